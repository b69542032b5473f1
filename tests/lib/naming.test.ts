import * as assert from "assert";
import { BUCKET_NAME, FIREWALL_LABEL, INSTANCE_LABEL, OBJECT_STORAGE_KEY_LABEL } from "../../lib/linodeLimits";
import {
    bucketNameBase, bucketNameProblem, firewallLabel, firewallLabelProblem, instanceLabelBase, instanceLabelProblem, labelWithSuffix,
    namedForStack, objectStorageKeyLabel, objectStorageKeyLabelProblem, physicalName, RANDOM_SUFFIX_LENGTH, readablePrefix, stackId,
} from "../../lib/naming";

const SUFFIX = "a1b2c3";
const awkwardStacks = ["dev", "pr-1234", "PR_1234", "feature/very-long-branch-name-that-goes-on-and-on-and-on-forever", "9starts-with-digit", "a--b", "UPPER.case"];
/** The roles the program names things with (index.ts, components/). */
const firewallRoles = ["wg-cache-fw", "nats-fw"];
const instanceRoles = ["wg-cache-node", "nats-0", "nats-6"];
const keyRoles = ["rendezvous-key", "rendezvous-agent-key"];
const bucketRoles = ["rendezvous", "rendezvous-rt"];

describe("naming", () => {
    it("keeps short names readable: project, stack, the pair's id, role", () => {
        const ctx = { project: "meshstack", stack: "dev" };
        assert.strictEqual(physicalName(ctx, "wg-cache", 64), `meshstack-dev-${stackId(ctx)}-wg-cache`);
        assert.match(stackId(ctx), /^[0-9a-f]{6}$/);
    });

    it("is stable across runs", () => {
        const ctx = { project: "meshstack", stack: "PR_77" };
        assert.strictEqual(instanceLabelBase(ctx, "nats-0"), instanceLabelBase(ctx, "nats-0"));
    });

    it("gives staging and pr-12 firewall labels the provider accepts (it refused 35 and 33 characters)", () => {
        for (const stack of ["staging", "pr-12", "pr-999999999"]) {
            for (const role of firewallRoles) {
                const label = firewallLabel({ project: "meshstack", stack }, role);
                assert.ok(label.length <= FIREWALL_LABEL.max, `${label}: ${label.length}`);
                assert.ok(label.includes(stack), `${label} keeps the stack whole`);
            }
        }
    });

    it("shortens the project before the stack, and the stack only when nothing else fits", () => {
        assert.strictEqual(readablePrefix({ project: "meshstack", stack: "staging" }, 13), "meshs-staging");
        assert.strictEqual(readablePrefix({ project: "meshstack", stack: "pr-123456789" }, 13), "pr-123456789");
        assert.strictEqual(readablePrefix({ project: "meshstack", stack: "a-very-long-stack" }, 5), "a-ver");
        assert.strictEqual(readablePrefix({ project: "meshstack", stack: "12" }, 40), "meshstack-12");
        assert.strictEqual(readablePrefix({ project: "", stack: "12" }, 40), "m-12");
        assert.strictEqual(readablePrefix({ project: "", stack: "" }, 40), "m");
        // A project that fills the room exactly stays whole; one starting with a digit gets its letter.
        assert.strictEqual(readablePrefix({ project: "abcde", stack: "" }, 5), "abcde");
        assert.strictEqual(readablePrefix({ project: "9lives", stack: "x" }, 40), "m-9lives-x");
        // Whatever is not [a-z0-9-] becomes one dash, so words stay apart.
        assert.strictEqual(readablePrefix({ project: "My  Project", stack: "a.b" }, 40), "my-project-a-b");
    });

    it("tells project meshstack-pr with stack 12 from project meshstack with stack pr-12", () => {
        const a = { project: "meshstack-pr", stack: "12" };
        const b = { project: "meshstack", stack: "pr-12" };
        for (const name of [firewallLabel, instanceLabelBase, objectStorageKeyLabel, bucketNameBase]) {
            assert.notStrictEqual(name(a, "nats-fw"), name(b, "nats-fw"), name.name);
        }
    });

    for (const stack of awkwardStacks) {
        it(`gives every resource type a valid name for stack ${JSON.stringify(stack)}`, () => {
            const ctx = { project: "meshstack", stack };
            for (const role of firewallRoles) assert.strictEqual(firewallLabelProblem(firewallLabel(ctx, role)), undefined, role);
            for (const role of instanceRoles) {
                const label = labelWithSuffix(instanceLabelBase(ctx, role), SUFFIX);
                assert.strictEqual(instanceLabelProblem(label), undefined, label);
                assert.ok(label.length <= INSTANCE_LABEL.max);
            }
            for (const role of keyRoles) assert.strictEqual(objectStorageKeyLabelProblem(objectStorageKeyLabel(ctx, role)), undefined, role);
            for (const role of bucketRoles) {
                const bucket = `${bucketNameBase(ctx, role)}-${SUFFIX}`;
                assert.strictEqual(bucketNameProblem(bucket), undefined, bucket);
            }
        });
    }

    it("never gives two stacks of one project the same name, even when they clean to the same text", () => {
        const stacks = ["pr-12", "pr_12", "PR-12", "pr.12", "pr--12", ...awkwardStacks];
        for (const role of [...firewallRoles, ...instanceRoles]) {
            const labels = stacks.map((stack) => firewallLabel({ project: "meshstack", stack }, role));
            assert.strictEqual(new Set(labels).size, stacks.length, labels.join(", "));
        }
    });

    it("keeps truncated names distinct when they share a long prefix", () => {
        const long = "x".repeat(80);
        const a = instanceLabelBase({ project: "meshstack", stack: `${long}-a` }, "wg");
        const b = instanceLabelBase({ project: "meshstack", stack: `${long}-b` }, "wg");
        assert.notStrictEqual(a, b);
        assert.strictEqual(a.length, INSTANCE_LABEL.max - RANDOM_SUFFIX_LENGTH - 1);
    });

    it("leaves room for the random suffix in bucket names", () => {
        const base = bucketNameBase({ project: "meshstack", stack: "s".repeat(90) }, "rendezvous");
        assert.strictEqual(base.length + 1 + RANDOM_SUFFIX_LENGTH, BUCKET_NAME.max);
    });

    it("refuses a role that is not in the common form or leaves no room, naming it and what is allowed", () => {
        assert.throws(() => physicalName({ project: "p", stack: "s" }, "Nats_0", 32), /role "Nats_0" does not fit a name of at most 32 characters; allowed: lowercase \[a-z0-9-\].*at most 23 characters/);
        assert.throws(() => physicalName({ project: "p", stack: "s" }, "", 32), /role ""/);
        assert.throws(() => physicalName({ project: "p", stack: "s" }, "r".repeat(24), 32), /at most 23 characters/);
        assert.strictEqual(physicalName({ project: "p", stack: "s" }, "r".repeat(23), 32).length, 32);
    });

    it("proves a name was made for one exact (project, stack), and for no other", () => {
        const pr12 = { project: "meshstack", stack: "pr-12" };
        for (const name of [firewallLabel(pr12, "wg-cache-fw"), `${bucketNameBase(pr12, "rendezvous")}-${SUFFIX}`, objectStorageKeyLabel(pr12, "rendezvous-key")]) {
            assert.ok(namedForStack(name, pr12), name);
            assert.ok(!namedForStack(name, { project: "meshstack", stack: "pr-1" }), name);
            assert.ok(!namedForStack(name, { project: "meshstack-pr", stack: "12" }), name);
        }
        for (const other of [{ project: "meshstack", stack: "pr-12-hotfix" }, { project: "meshstack-pr", stack: "12" }]) {
            assert.ok(!namedForStack(`${bucketNameBase(other, "rendezvous")}-${SUFFIX}`, pr12), JSON.stringify(other));
        }
        // The name before this scheme, which any of them could have had.
        assert.ok(!namedForStack("meshstack-pr-12-rendezvous-abc123", pr12));
    });

    it("flags names that break each type's rules, with the limit", () => {
        assert.match(instanceLabelProblem("a--b")!, /in a row/);
        assert.match(instanceLabelProblem("-ab")!, /start and end/);
        assert.match(instanceLabelProblem("ab")!, /length 2 is outside 3-50/);
        assert.match(firewallLabelProblem("f".repeat(33))!, /length 33 is outside 3-32/);
        assert.match(objectStorageKeyLabelProblem("k".repeat(51))!, new RegExp(`outside 3-${OBJECT_STORAGE_KEY_LABEL.max}`));
        assert.match(bucketNameProblem("Upper-case")!, /lowercase/);
        assert.match(bucketNameProblem("xn--punycode")!, /reserves/);
        assert.match(bucketNameProblem("a".repeat(64))!, /length 64 is outside 3-63/);
    });
});
