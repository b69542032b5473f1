import * as assert from "assert";
import fc from "fast-check";
import { PREVIEW_STACK } from "../../lib/environments";
import {
    bucketNameBase, bucketNameProblem, firewallLabel, firewallLabelProblem, instanceLabelBase, instanceLabelProblem, labelWithSuffix,
    namedForStack, NamingContext, objectStorageKeyLabel, objectStorageKeyLabelProblem, RANDOM_SUFFIX_LENGTH,
} from "../../lib/naming";

const RUNS = { numRuns: 300 };

/**
 * The largest PR number a preview stack takes: PREVIEW_STACK allows nine
 * digits. The first test holds that bound, so a wider pattern there widens
 * (and fails) this one instead of leaving PRs untested.
 */
const LARGEST_PR = 999_999_999;

/** Any text a stack or project name could hold, biased to what cleaning folds together (case, _ . - and spaces). */
const part = fc.oneof(
    fc.string({ unit: fc.constantFrom("a", "B", "1", "-", "_", ".", " "), maxLength: 8 }),
    fc.string({ unit: "grapheme", maxLength: 40 }),
    fc.string({ maxLength: 80 }),
);
const prStack = fc.integer({ min: 1, max: LARGEST_PR }).map((n) => `pr-${n}`);
const stack = fc.oneof(part, prStack);
const suffix = fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789"), minLength: RANDOM_SUFFIX_LENGTH, maxLength: RANDOM_SUFFIX_LENGTH });
const context = (project: string, stackName: string): NamingContext => ({ project, stack: stackName });

/** Each resource type the program names, the roles it names it with, and the rules for the whole name. */
const TYPES = [
    { type: "firewall", roles: ["wg-cache-fw", "nats-fw"], name: (c: NamingContext, r: string) => firewallLabel(c, r), problem: firewallLabelProblem },
    { type: "instance", roles: ["wg-cache-node", "nats-0", "nats-6"], name: (c: NamingContext, r: string, s: string) => labelWithSuffix(instanceLabelBase(c, r), s), problem: instanceLabelProblem },
    { type: "key", roles: ["rendezvous-key", "rendezvous-agent-key"], name: (c: NamingContext, r: string) => objectStorageKeyLabel(c, r), problem: objectStorageKeyLabelProblem },
    { type: "bucket", roles: ["rendezvous", "rendezvous-rt"], name: (c: NamingContext, r: string, s: string) => `${bucketNameBase(c, r)}-${s}`, problem: bucketNameProblem },
];
const typed = fc.constantFrom(...TYPES).chain((t) => fc.record({ t: fc.constant(t), role: fc.constantFrom(...t.roles) }));

describe("naming (properties)", () => {
    it("covers every PR number a preview takes: pr-1 up to pr-999999999, and no more", () => {
        assert.ok(PREVIEW_STACK.test(`pr-${LARGEST_PR}`));
        assert.ok(!PREVIEW_STACK.test(`pr-${LARGEST_PR + 1}`));
    });

    it("every name is within its type's limits and charset, for any project and stack, pr-<n> included", () => {
        fc.assert(fc.property(part, stack, typed, suffix, (project, stackName, { t, role }, s) => {
            const name = t.name(context(project, stackName), role, s);
            assert.strictEqual(t.problem(name), undefined, `${t.type} ${JSON.stringify(name)}`);
        }), RUNS);
    });

    it("a preview's names hold its stack whole, next to the pair's id: the sweeper can prove them", () => {
        fc.assert(fc.property(fc.constantFrom("meshstack", "a-much-longer-project-name-than-usual"), prStack, typed, suffix, (project, stackName, { t, role }, s) => {
            const ctx = context(project, stackName);
            assert.ok(namedForStack(t.name(ctx, role, s), ctx), `${t.type} ${t.name(ctx, role, s)}`);
        }), RUNS);
    });

    it("never gives two different (project, stack) pairs the same name for a role", () => {
        fc.assert(fc.property(part, stack, part, stack, typed, suffix, (p1, s1, p2, s2, { t, role }, s) => {
            fc.pre(p1 !== p2 || s1 !== s2);
            assert.notStrictEqual(t.name(context(p1, s1), role, s), t.name(context(p2, s2), role, s), `${t.type}: (${p1}, ${s1}) / (${p2}, ${s2})`);
        }), RUNS);
    });

    it("never gives pairs that join to the same text the same name (a-b + c against a + b-c)", () => {
        fc.assert(fc.property(part, part, part, typed, suffix, (a, b, c, { t, role }, s) => {
            const [x, y] = [context(`${a}-${b}`, c), context(a, `${b}-${c}`)];
            assert.notStrictEqual(t.name(x, role, s), t.name(y, role, s), t.type);
            assert.ok(!namedForStack(t.name(x, role, s), y) && !namedForStack(t.name(y, role, s), x), "neither name proves the other pair");
        }), RUNS);
    });

    it("never gives two previews the same name, nor proves one preview's name for another", () => {
        fc.assert(fc.property(fc.integer({ min: 1, max: LARGEST_PR }), fc.integer({ min: 1, max: LARGEST_PR }), typed, suffix, (n, m, { t, role }, s) => {
            fc.pre(n !== m);
            const [a, b] = [context("meshstack", `pr-${n}`), context("meshstack", `pr-${m}`)];
            assert.notStrictEqual(t.name(a, role, s), t.name(b, role, s));
            assert.ok(!namedForStack(t.name(a, role, s), b), `${t.name(a, role, s)} proved for pr-${m}`);
        }), RUNS);
    });

    it("no two roles of one stack share a name", () => {
        fc.assert(fc.property(part, stack, suffix, (project, stackName, s) => {
            for (const t of TYPES) {
                const names = t.roles.map((role) => t.name(context(project, stackName), role, s));
                assert.strictEqual(new Set(names).size, names.length, names.join(", "));
            }
        }), RUNS);
    });
});
