/**
 * The stream guard's rule (lib/natsRollout.ts streamLoss): which streams a
 * NATS node would take with it, less what meshstack:natsAcceptStreamLoss
 * accepts, and the refusal that names them.
 */
import * as assert from "assert";
import fc from "fast-check";
import { EVERY_STREAM, StreamPlacement, streamLoss, streamLossProblem, streamsHeldBy, streamsOnlyOn, STREAM_NAME } from "../../lib/natsRollout";

const NODE = "meshstack-dev-1";
const OTHERS = ["meshstack-dev-0", "meshstack-dev-2"];
const r1 = (stream: string, leader: string): StreamPlacement => ({ stream, leader, replicas: [] });
const r3 = (stream: string, leader: string): StreamPlacement => ({
    stream, leader, replicas: [NODE, ...OTHERS].filter((n) => n !== leader).map((name) => ({ name, current: true })),
});
const unread = (stream: string): StreamPlacement => ({ stream, replicas: [], unavailable: "stream is offline" });

describe("the stream guard's rule", () => {
    it("a node loses the R1 streams it leads, and nothing it shares with other replicas", () => {
        const seen = [r1("ORDERS", NODE), r1("KV_control", OTHERS[0]), r3("KV_config", NODE), r3("EVENTS", OTHERS[1])];
        assert.deepStrictEqual(streamsOnlyOn(NODE, seen), ["ORDERS"]);
        assert.deepStrictEqual(streamsOnlyOn(NODE, [r1("ORDERS", NODE), r1("EVENTS", NODE)]), ["EVENTS", "ORDERS"], "in name order");
        assert.deepStrictEqual(streamLoss(NODE, seen, []), { lost: ["ORDERS"], unknown: [] });
        assert.deepStrictEqual(streamLoss(OTHERS[0], seen, []), { lost: ["KV_control"], unknown: [] });
        assert.deepStrictEqual(streamLoss(OTHERS[1], seen, []), { lost: [], unknown: [] });
    });

    it("streams lost and streams not read are each listed in name order, whatever order the cluster lists them in", () => {
        assert.deepStrictEqual(streamLoss(NODE, [r1("ORDERS", NODE), unread("ZETA"), r1("EVENTS", NODE), unread("ALPHA")], []), {
            lost: ["EVENTS", "ORDERS"], unknown: ["ALPHA (stream is offline)", "ZETA (stream is offline)"],
        });
    });

    it("an R3 stream whose followers are all offline is not the node's alone: their disks still hold it", () => {
        const seen: StreamPlacement[] = [{ stream: "KV_config", leader: NODE, replicas: OTHERS.map((name) => ({ name, current: false, offline: true })) }];
        assert.deepStrictEqual(streamLoss(NODE, seen, []).lost, []);
    });

    it("a placement that could not be read may be an R1 stream on the node: it is named with why, unless accepted", () => {
        const seen = [unread("ORDERS"), r1("KV_control", NODE)];
        assert.deepStrictEqual(streamLoss(NODE, seen, []), { lost: ["KV_control"], unknown: ["ORDERS (stream is offline)"] });
        assert.deepStrictEqual(streamLoss(NODE, seen, ["ORDERS"]), { lost: ["KV_control"], unknown: [] });
    });

    it("accepting by name removes exactly those streams; \"*\" accepts every one", () => {
        const seen = [r1("ORDERS", NODE), r1("KV_control", NODE), unread("EVENTS")];
        assert.deepStrictEqual(streamLoss(NODE, seen, ["KV_control"]), { lost: ["ORDERS"], unknown: ["EVENTS (stream is offline)"] });
        assert.deepStrictEqual(streamLoss(NODE, seen, ["KV_control", "ORDERS", "EVENTS"]), { lost: [], unknown: [] });
        assert.deepStrictEqual(streamLoss(NODE, seen, [EVERY_STREAM]), { lost: [], unknown: [] });
    });

    it("the refusal names the node, each stream, why, the way to keep them and the exact names to accept", () => {
        const problem = streamLossProblem("nats-1", NODE, { lost: ["KV_control", "ORDERS"], unknown: ["EVENTS (stream is offline)"] })!;
        assert.match(problem, /^refused: NATS node nats-1 \(meshstack-dev-1\) is about to be deleted \(replaced, or removed by a lower meshstack:natsNodeCount\)/);
        assert.match(problem, /KV_control, ORDERS: the only replica of each is on meshstack-dev-1; EVENTS \(stream is offline\): where its replicas are could not be read, so it may be one too\. Nothing has been deleted\./);
        assert.match(problem, /`nats stream edit <stream> --replicas 3`/);
        assert.match(problem, /add "KV_control", "ORDERS", "EVENTS" to meshstack:natsAcceptStreamLoss/);
        assert.match(streamLossProblem("nats-1", NODE, { lost: ["ORDERS"], unknown: [] })!, /ORDERS: the only replica of this stream is on meshstack-dev-1\. Nothing/);
        assert.strictEqual(streamLossProblem("nats-1", NODE, { lost: [], unknown: [] }), undefined);
    });

    it("the refusal for placements not read alone: no lost part, and the plural when there are two", () => {
        assert.match(streamLossProblem("nats-1", NODE, { lost: [], unknown: ["EVENTS (stream is offline)"] })!,
            /would lose streams with it: EVENTS \(stream is offline\): where its replicas are could not be read, so it may be one too\. Nothing/);
        assert.match(streamLossProblem("nats-1", NODE, { lost: [], unknown: ["A (offline)", "B (no leader)"] })!,
            /with it: A \(offline\), B \(no leader\): where their replicas are could not be read, so each may be one too\. Nothing/);
    });

    it("stream names: what JetStream allows, and not subjects' wildcards or separators", () => {
        for (const ok of ["KV_control", "ORDERS", "a-b_c", "x".repeat(255)]) assert.ok(STREAM_NAME.test(ok), ok);
        for (const bad of ["", "a b", "a.b", "a*", "a>", "a/b", "a\\b", "x".repeat(256), EVERY_STREAM]) assert.ok(!STREAM_NAME.test(bad), bad);
    });

    it("property: the loss is what the node holds alone or cannot be read, never an accepted stream, and nothing once all are accepted", () => {
        const servers = fc.constantFrom(NODE, ...OTHERS);
        const arbPlacement: fc.Arbitrary<StreamPlacement> = fc.oneof(
            fc.record({
                stream: fc.stringMatching(/^[A-Z]{1,3}$/),
                leader: fc.option(servers, { nil: undefined }),
                replicas: fc.array(fc.record({ name: servers, current: fc.boolean(), offline: fc.boolean() }), { maxLength: 2 }),
            }),
            fc.stringMatching(/^[A-Z]{1,3}$/).map(unread),
        );
        fc.assert(fc.property(fc.array(arbPlacement, { maxLength: 8 }), fc.array(fc.stringMatching(/^[A-Z]{1,3}$/), { maxLength: 4 }), (seen, accepted) => {
            const loss = streamLoss(NODE, seen, accepted);
            const held = new Set(streamsHeldBy(NODE, seen));
            for (const stream of loss.lost) {
                assert.ok(held.has(stream), `${stream} is on the node`);
                assert.ok(!accepted.includes(stream), `${stream} is not accepted`);
                const onOthers = seen.filter((p) => p.stream === stream && p.unavailable === undefined && p.leader === NODE).every((p) => p.replicas.every((r) => r.name === NODE));
                assert.ok(onOthers, `${stream} has no replica elsewhere`);
            }
            for (const reason of loss.unknown) assert.ok(!accepted.includes(reason.split(" ")[0]), reason);
            assert.strictEqual(streamLossProblem("nats-1", NODE, loss) === undefined, loss.lost.length === 0 && loss.unknown.length === 0);
            const everyName = [...new Set(seen.map((p) => p.stream))];
            assert.deepStrictEqual(streamLoss(NODE, seen, everyName), { lost: [], unknown: [] });
            assert.deepStrictEqual(streamLoss(NODE, seen, [EVERY_STREAM]), { lost: [], unknown: [] });
            // A node that leads nothing alone, with every placement read, loses nothing.
            const shared = seen.filter((p) => p.unavailable === undefined).map((p) => ({ ...p, replicas: [...p.replicas, { name: OTHERS[0], current: true }] }));
            assert.deepStrictEqual(streamLoss(NODE, shared, []).lost, []);
        }));
    });
});
