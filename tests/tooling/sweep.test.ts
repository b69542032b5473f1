import * as assert from "assert";
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import { bucketNameBase, firewallLabel, instanceLabelBase, objectStorageKeyLabel } from "../../lib/naming";
import {
    applySweep, DEFAULT_SWEEP_SETTINGS, LinodeResource, linodeResourcesFrom, planSweep, SweepExecutor, SweepInventory,
} from "../../tooling/sweep";

const recorded = JSON.parse(fs.readFileSync(path.join(__dirname, "../fixtures/sweep/recorded.json"), "utf8"));
const inventory: SweepInventory = { now: recorded.now, stacks: recorded.stacks, pulls: recorded.pulls, resources: linodeResourcesFrom(recorded.linode) };

const destroyed = (inv: SweepInventory, settings = DEFAULT_SWEEP_SETTINGS) =>
    planSweep(inv, settings).actions.flatMap((a) => (a.action === "destroy-stack" ? [a.stack] : []));
const deleted = (inv: SweepInventory, settings = DEFAULT_SWEEP_SETTINGS) =>
    planSweep(inv, settings).actions.flatMap((a) => (a.action === "delete-resource" ? [`${a.resource.kind}:${a.resource.label}`] : []));

function recordingExecutor(): SweepExecutor & { calls: string[] } {
    const calls: string[] = [];
    return {
        calls,
        async destroyStack(stack: string) { calls.push(`destroy ${stack}`); },
        async deleteResource(resource: LinodeResource) { calls.push(`delete ${resource.kind} ${resource.id}`); },
    };
}

describe("sweeper selection (recorded inventory)", () => {
    it("destroys the preview of a closed PR", () => {
        assert.ok(destroyed(inventory).includes("pr-10"));
        const reason = planSweep(inventory).actions.find((a) => a.action === "destroy-stack" && a.stack === "pr-10")!;
        assert.match(reason.reason, /PR #10 is closed/);
    });

    it("destroys an open PR's preview nobody updated for longer than the age limit, and only that one", () => {
        assert.deepStrictEqual(destroyed(inventory), ["pr-10", "pr-12"]);
    });

    it("takes the age limit from its settings", () => {
        assert.deepStrictEqual(destroyed(inventory, { ...DEFAULT_SWEEP_SETTINGS, maxAgeHours: 1 }), ["pr-10", "pr-11", "pr-12"]);
    });

    it("never touches dev, prod, or a stack with an update in progress", () => {
        const plan = planSweep(inventory);
        for (const stack of ["dev", "prod", "pr-13"]) assert.ok(!destroyed(inventory).includes(stack), stack);
        assert.ok(plan.kept.some((k) => k.startsWith("pr-13: an update is in progress")));
    });

    it("destroys the preview of a PR that does not exist", () => {
        const inv = { ...inventory, stacks: [{ name: "pr-99", lastUpdate: inventory.now }], pulls: [{ number: 99, state: "missing" as const }] };
        assert.deepStrictEqual(destroyed(inv), ["pr-99"]);
    });

    it("deletes resources named (or tagged) for a preview that has no stack, instances first, keys last", () => {
        const pr20 = { project: "meshstack", stack: "pr-20" };
        assert.deepStrictEqual(deleted(inventory), [
            `instance:${instanceLabelBase(pr20, "nats-0")}-a8b7c6`,
            `instance:${instanceLabelBase(pr20, "wg-cache-node")}-q1w2e3`,
            `firewall:${firewallLabel(pr20, "nats-fw")}`,
            `bucket:${bucketNameBase(pr20, "rendezvous")}-abc123`,
            `object-storage-key:${objectStorageKeyLabel(pr20, "rendezvous-key")}`,
        ]);
    });

    it("never sweeps what it cannot prove is this project's pr-<n>: a custom stack pr-20-hotfix, another project's pr-20, a name from before per-stack ids", () => {
        const names = deleted(inventory).join("\n");
        for (const other of [{ project: "meshstack", stack: "pr-20-hotfix" }, { project: "meshstack-pr", stack: "20" }]) {
            assert.ok(!names.includes(bucketNameBase(other, "rendezvous")), JSON.stringify(other));
            assert.ok(!names.includes(objectStorageKeyLabel(other, "rendezvous-key")), JSON.stringify(other));
        }
        // Project "other" tags its preview with the same constant preview and PR tags, but not with meshstack's stack tag.
        assert.ok(!names.includes(instanceLabelBase({ project: "other", stack: "pr-20" }, "nats-0")));
        const kept = planSweep(inventory).kept.join("\n");
        assert.match(kept, /bucket meshstack-pr-20-rendezvous-xyz789: mentions pr-20, but neither its name nor its tags prove it is meshstack's stack of that name; left for a person to judge/);
        assert.match(kept, /instance other-pr-20-[0-9a-f]{6}-nats-0-oth111: mentions pr-20, but/);
    });

    it("destroys only stacks named exactly pr-<n>: pr-12-hotfix is not PR 12's preview", () => {
        const inv = { ...inventory, stacks: [{ name: "pr-12-hotfix", lastUpdate: "2026-01-01T00:00:00Z" }, { name: "pr-012" }, { name: "PR-12" }], pulls: [{ number: 12, state: "closed" as const }] };
        assert.deepStrictEqual(destroyed(inv), []);
    });

    it("spares what is younger than the grace period, key included (dated by its PR's instance)", () => {
        const kept = planSweep(inventory).kept.join("\n");
        const pr21 = { project: "meshstack", stack: "pr-21" };
        assert.ok(kept.includes(`instance ${instanceLabelBase(pr21, "nats-0")}-z9y8x7: of pr-21, which has no stack, but younger than 2 h`), kept);
        assert.ok(kept.includes(`object-storage-key ${objectStorageKeyLabel(pr21, "rendezvous-key")}: of pr-21`), kept);
    });

    it("spares what belongs to an existing stack, to no preview, or to another tool", () => {
        const names = deleted(inventory).join("\n");
        for (const label of ["pr-11", "meshstack-dev", "someone-elses-server", "othertool-pr-20-cache", "hand-made-preview"]) assert.ok(!names.includes(label), label);
        assert.match(planSweep(inventory).kept.join("\n"), /hand-made-preview: tagged meshstack-preview without a PR tag/);
    });

    it("reads Linode's zone-less times as UTC", () => {
        const [instance] = linodeResourcesFrom({ instances: [{ id: 1, label: "x", created: "2026-12-01T10:00:00" }] });
        assert.strictEqual(instance.created, "2026-12-01T10:00:00Z");
    });

    it("changes nothing in a dry run", async () => {
        const executor = recordingExecutor();
        const results = await applySweep(planSweep(inventory), executor, false);
        assert.deepStrictEqual(executor.calls, []);
        assert.strictEqual(results.length, 7);
        assert.ok(results.every((r) => r.outcome === "dry-run"));
    });

    it("acts with --yes, stacks first, and reports a failure without stopping", async () => {
        const executor = recordingExecutor();
        const failing: SweepExecutor = {
            destroyStack: executor.destroyStack,
            async deleteResource(resource) {
                if (resource.kind === "bucket") throw new Error("BucketNotEmpty");
                return executor.deleteResource(resource);
            },
        };
        const results = await applySweep(planSweep(inventory), failing, true);
        assert.deepStrictEqual(executor.calls.slice(0, 2), ["destroy pr-10", "destroy pr-12"]);
        assert.strictEqual(executor.calls.length, 6);
        assert.match(results.find((r) => r.action.includes("bucket"))!.outcome, /failed: BucketNotEmpty/);
    });
});

describe("sweep script", function () {
    this.timeout(60_000);
    const run = promisify(execFile);
    const fixture = path.join(__dirname, "../fixtures/sweep/recorded.json");
    const sweep = (...args: string[]) => run("npx", ["ts-node", "--transpile-only", "scripts/sweep.ts", ...args], { cwd: path.resolve(__dirname, "../..") });

    it("is a dry run by default: lists what it would do and why, and changes nothing", async () => {
        const { stdout } = await sweep("--inventory", fixture);
        assert.match(stdout, /would destroy and remove stack pr-10: PR #10 is closed/);
        const bucket = `${bucketNameBase({ project: "meshstack", stack: "pr-20" }, "rendezvous")}-abc123`;
        assert.ok(stdout.includes(`would delete bucket ${bucket} (us-east/${bucket}): belongs to pr-20, which has no stack`), stdout);
        assert.match(stdout, /dry run: 7 actions, nothing changed; run with --yes to act/);
    });

    it("refuses --yes on a recorded inventory and an unknown option, naming it", async () => {
        await assert.rejects(sweep("--inventory", fixture, "--yes"), (err: { stderr: string }) => /cannot be combined with --inventory/.test(err.stderr));
        await assert.rejects(sweep("--max-age", "3"), (err: { stderr: string }) => /unknown option --max-age/.test(err.stderr));
    });
});
