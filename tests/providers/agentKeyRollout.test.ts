import * as assert from "assert";
import { AGENT_KEY_POLL_INTERVAL_MS, agentKeyRolloutProvider, AgentKeyRolloutOutputs, ReportResponse, waitForAgentKeyReports } from "../../providers/agentKeyRollout";
import { fakeClock, NO_REPORT_YET } from "../support/fakeClock";

const KEY = "0123456789abcdef";
const TARGET = { endpoint: "https://store.invalid", region: "us-east-1", bucket: "rt", stack: "dev", agentKeyId: KEY, nodes: { "nats-0": "101", "wg-cache": "100" }, deadlineSeconds: 60, revokedBy: "stack" as const };

/** A store on a fake clock: each node's report appears at the given time (ms), or never. */
function fakeStore(reportsAt: Record<string, number | undefined>, report = (node: string) => ({ version: 1, node, instanceId: TARGET.nodes[node as keyof typeof TARGET.nodes], agentKeyId: KEY })) {
    const clock = fakeClock();
    const deps = {
        now: clock.now,
        sleep: clock.sleep,
        get: async (node: string): Promise<ReportResponse> => {
            const at = reportsAt[node];
            return at !== undefined && clock.now() >= at ? { status: 200, body: Buffer.from(JSON.stringify(report(node))) } : NO_REPORT_YET;
        },
        log: clock.log,
    };
    return { deps, lines: clock.lines, sleeps: clock.sleeps };
}

describe("agents' key rollout: the wait for every node's report", () => {
    it("ends at the first round where every node has reported the key, with a progress line per round", async () => {
        const { deps, lines } = fakeStore({ "wg-cache": 0, "nats-0": 12_000 });
        const result = await waitForAgentKeyReports(TARGET, deps);
        assert.deepStrictEqual(result, { missing: [], waitedMs: 15_000 });
        assert.strictEqual(lines[0], "agents' key 0123456789abcdef: 1 of 2 node(s) read with it; waiting for nats-0 (no report yet); giving up in 60.0s");
        assert.strictEqual(lines.at(-1), "agents' key 0123456789abcdef: all 2 node(s) read with it (15.0s)");
    });

    it("polls on a condition every few seconds, never a fixed wait longer than the poll interval", async () => {
        const { deps, sleeps } = fakeStore({ "wg-cache": 0, "nats-0": 30_000 });
        await waitForAgentKeyReports(TARGET, deps);
        assert.ok(sleeps.every((ms) => ms <= AGENT_KEY_POLL_INTERVAL_MS), JSON.stringify(sleeps));
    });

    it("at the deadline names the nodes that did not report and what follows, and ends without failing the `up`", async () => {
        const { deps, lines } = fakeStore({ "wg-cache": 0, "nats-0": undefined });
        const result = await waitForAgentKeyReports(TARGET, deps);
        assert.deepStrictEqual(result, { missing: ["nats-0"], waitedMs: 60_000 });
        assert.match(lines.at(-1)!, /^warning: agents' key 0123456789abcdef: nats-0 did not report reading with it within 60\.0s \(last seen: nats-0 \(no report yet\)\); the previous key is deleted at the end of this `up`, and those nodes can then read no desired state: rebuild each/);
    });

    it("tells an s3 store's operator not to revoke the old key yet", async () => {
        const { deps, lines } = fakeStore({ "wg-cache": 0, "nats-0": undefined });
        await waitForAgentKeyReports({ ...TARGET, revokedBy: "operator" }, deps);
        assert.match(lines.at(-1)!, /do not revoke the previous key in your store until they report/);
    });

    it("does not count a report of another key or another instance (a predecessor's)", async () => {
        const { deps, lines } = fakeStore({ "wg-cache": 0, "nats-0": 0 }, (node) => ({ version: 1, node, instanceId: "99", agentKeyId: "fedcba9876543210" }));
        const result = await waitForAgentKeyReports({ ...TARGET, deadlineSeconds: 5 }, deps);
        assert.deepStrictEqual(result.missing, ["nats-0", "wg-cache"]);
        assert.match(lines[0], /nats-0 \(a report that is from instance "99", not 101; names key "fedcba9876543210", not 0123456789abcdef\)/);
    });
});

describe("agents' key rollout: when it waits", () => {
    const OLDS: AgentKeyRolloutOutputs = { ...TARGET, missing: [], waitedMs: 1 };
    const NEWS = { ...TARGET, accessKeyId: "deploy", secretAccessKey: "secret" };

    it("is updated for another key, or another instance of a node", async () => {
        assert.deepStrictEqual(((await agentKeyRolloutProvider.diff!("id", OLDS, { ...NEWS, agentKeyId: "fedcba9876543210" })) as { diffs?: string[] }).diffs, ["agentKeyId"]);
        assert.deepStrictEqual(((await agentKeyRolloutProvider.diff!("id", OLDS, { ...NEWS, nodes: { ...TARGET.nodes, "nats-0": "102" } })) as { diffs?: string[] }).diffs, ["nodes"]);
    });

    it("leaves an unchanged rollout alone, and never replaces one", async () => {
        assert.strictEqual((await agentKeyRolloutProvider.diff!("id", OLDS, NEWS)).changes, false);
        assert.deepStrictEqual((await agentKeyRolloutProvider.diff!("id", OLDS, { ...NEWS, agentKeyId: "fedcba9876543210" })).replaces, []);
    });

    it("waits for nothing when it is created or only the nodes changed: every node booted with the current key", async () => {
        const logs: string[] = [];
        const log = console.log;
        console.log = (line: string) => logs.push(line);
        try {
            assert.deepStrictEqual((await agentKeyRolloutProvider.create!(NEWS)).outs, { ...TARGET, missing: [], waitedMs: 0 });
            const moved = { ...NEWS, nodes: { ...TARGET.nodes, "nats-0": "102" } };
            assert.deepStrictEqual((await agentKeyRolloutProvider.update!("id", OLDS, moved)).outs, { ...TARGET, nodes: moved.nodes, missing: [], waitedMs: 0 });
        } finally {
            console.log = log;
        }
        assert.deepStrictEqual(logs, [
            "agents' key 0123456789abcdef: every node booted with it; nothing to wait for",
            "agents' key 0123456789abcdef: unchanged, and a node made since booted with it; nothing to wait for",
        ]);
    });

    it("refuses a key id that is not 16 hex digits and an empty node set, naming each", async () => {
        const checked = await agentKeyRolloutProvider.check!({} as never, { ...NEWS, agentKeyId: "KEY1", nodes: {} });
        assert.deepStrictEqual(checked.failures!.map((f) => f.property), ["agentKeyId", "nodes"]);
    });
});
