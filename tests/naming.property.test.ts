import * as assert from "assert";
import fc from "fast-check";
import {
    bucketNameBase, bucketNameProblem, labelWithSuffix, linodeLabel, linodeLabelBase, linodeLabelProblem, NamingContext, RANDOM_SUFFIX_LENGTH,
} from "../lib/naming";

const RUNS = { numRuns: 300 };

/** Any text a stack or project name could hold, biased to what cleaning folds together (case, _ . - and spaces). */
const part = fc.oneof(
    fc.string({ unit: fc.constantFrom("a", "B", "1", "-", "_", ".", " "), maxLength: 8 }),
    fc.string({ unit: "grapheme", maxLength: 40 }),
    fc.string({ maxLength: 80 }),
);
/** Parts without the "-" that joins project, stack and role. */
const dashFreePart = part.map((p) => p.replace(/-/g, ""));
const suffix = fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789"), minLength: RANDOM_SUFFIX_LENGTH, maxLength: RANDOM_SUFFIX_LENGTH });
const context = (project: string, stack: string): NamingContext => ({ project, stack });

describe("naming (properties)", () => {
    it("every firewall or key label is a valid Linode label", () => {
        fc.assert(fc.property(part, part, part, (project, stack, role) => {
            assert.strictEqual(linodeLabelProblem(linodeLabel(context(project, stack), role)), undefined);
        }), RUNS);
    });

    it("every instance label, with its random suffix, is a valid Linode label", () => {
        fc.assert(fc.property(part, part, part, suffix, (project, stack, role, s) => {
            assert.strictEqual(linodeLabelProblem(labelWithSuffix(linodeLabelBase(context(project, stack), role), s)), undefined);
        }), RUNS);
    });

    it("every bucket name, with its random suffix, is a valid bucket name and a valid Linode label", () => {
        fc.assert(fc.property(part, part, part, suffix, (project, stack, role, s) => {
            const name = `${bucketNameBase(context(project, stack), role)}-${s}`;
            assert.strictEqual(bucketNameProblem(name), undefined);
            assert.strictEqual(linodeLabelProblem(name), undefined);
        }), RUNS);
    });

    it("never gives two stacks of one project the same name for a role, even where cleaning folds them together", () => {
        fc.assert(fc.property(part, part, part, part, (project, stack, otherStack, role) => {
            fc.pre(stack !== otherStack);
            for (const name of [linodeLabel, linodeLabelBase, bucketNameBase]) {
                assert.notStrictEqual(name(context(project, stack), role), name(context(project, otherStack), role), `${name.name}: ${stack} / ${otherStack}`);
            }
        }), RUNS);
    });

    // The parts are joined with "-", so ("a-b", "c") and ("a", "b-c") spell
    // the same name: the guarantee holds for parts that do not hold the
    // separator, and within one project for roles of which none ends in
    // "-" + another (the program's roles: component names).
    it("never gives two different (project, stack, role) the same name when no part holds the separator", () => {
        fc.assert(fc.property(dashFreePart, dashFreePart, dashFreePart, dashFreePart, dashFreePart, dashFreePart, (p1, s1, r1, p2, s2, r2) => {
            fc.pre(p1 !== p2 || s1 !== s2 || r1 !== r2);
            for (const name of [linodeLabel, linodeLabelBase, bucketNameBase]) {
                assert.notStrictEqual(name(context(p1, s1), r1), name(context(p2, s2), r2), name.name);
            }
        }), RUNS);
    });
});
