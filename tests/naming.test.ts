import * as assert from "assert";
import {
    BUCKET_NAME_MAX, bucketNameBase, bucketNameProblem, labelWithSuffix, LINODE_LABEL_MAX, linodeLabel, linodeLabelBase,
    linodeLabelProblem, physicalName, RANDOM_SUFFIX_LENGTH,
} from "../lib/naming";

const SUFFIX = "a1b2c3";
const awkwardStacks = ["dev", "pr-1234", "PR_1234", "feature/very-long-branch-name-that-goes-on-and-on-and-on-forever", "9starts-with-digit", "a--b", "UPPER.case"];
const roles = ["rendezvous", "wg-cache", "nats-0", "nats-2-route"];

describe("naming", () => {
    it("keeps short clean names readable", () => {
        assert.strictEqual(physicalName({ project: "meshstack", stack: "dev" }, "wg-cache", 64), "meshstack-dev-wg-cache");
    });

    it("is stable across runs", () => {
        const ctx = { project: "meshstack", stack: "PR_77" };
        assert.strictEqual(linodeLabelBase(ctx, "nats-0"), linodeLabelBase(ctx, "nats-0"));
    });

    for (const stack of awkwardStacks) {
        it(`gives valid Linode labels and bucket names for stack ${JSON.stringify(stack)}`, () => {
            for (const role of roles) {
                const ctx = { project: "meshstack", stack };
                const label = labelWithSuffix(linodeLabelBase(ctx, role), SUFFIX);
                assert.strictEqual(linodeLabelProblem(label), undefined, label);
                assert.strictEqual(linodeLabelProblem(linodeLabel(ctx, role)), undefined);
                const bucket = `${bucketNameBase(ctx, role)}-${SUFFIX}`;
                assert.strictEqual(bucketNameProblem(bucket), undefined, bucket);
                assert.ok(label.length <= LINODE_LABEL_MAX && bucket.length <= BUCKET_NAME_MAX);
            }
        });
    }

    it("never gives two stacks of one project the same name, even when they clean to the same text", () => {
        const stacks = ["pr-12", "pr_12", "PR-12", "pr.12", "pr--12", ...awkwardStacks];
        for (const role of roles) {
            const labels = stacks.map((stack) => linodeLabelBase({ project: "meshstack", stack }, role));
            const buckets = stacks.map((stack) => bucketNameBase({ project: "meshstack", stack }, role));
            assert.strictEqual(new Set(labels).size, stacks.length, labels.join(", "));
            assert.strictEqual(new Set(buckets).size, stacks.length, buckets.join(", "));
        }
    });

    it("keeps truncated names distinct when they share a long prefix", () => {
        const long = "x".repeat(80);
        const a = linodeLabelBase({ project: "meshstack", stack: `${long}-a` }, "wg");
        const b = linodeLabelBase({ project: "meshstack", stack: `${long}-b` }, "wg");
        assert.notStrictEqual(a, b);
        assert.ok(a.length <= LINODE_LABEL_MAX - RANDOM_SUFFIX_LENGTH - 1);
    });

    it("leaves room for the random suffix in bucket names", () => {
        const base = bucketNameBase({ project: "meshstack", stack: "s".repeat(90) }, "rendezvous");
        assert.ok(base.length + 1 + RANDOM_SUFFIX_LENGTH <= BUCKET_NAME_MAX);
    });

    it("flags names that break Linode label rules", () => {
        assert.match(linodeLabelProblem("a--b")!, /in a row/);
        assert.match(linodeLabelProblem("-ab")!, /start and end/);
        assert.match(linodeLabelProblem("ab")!, /length/);
    });

    it("flags names that break bucket rules", () => {
        assert.match(bucketNameProblem("Upper-case")!, /lowercase/);
        assert.match(bucketNameProblem("xn--punycode")!, /reserves/);
        assert.match(bucketNameProblem("a".repeat(64))!, /length/);
    });
});
