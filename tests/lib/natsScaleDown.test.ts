/**
 * The scale-down's decisions (lib/natsScaleDown.ts): who leaves and in which
 * order, what is refused before anything moves, what to move off a node,
 * when a stream may give up a replica, and when a node is evacuated.
 */
import * as assert from "assert";
import { StreamPlacement } from "../../lib/natsRollout";
import {
    evacuationPending, leavingMembers, metaGroupPending, notReadyToMove, replacedMembers, replacedWhileLeavingProblem, routesToNonMembers, scaleDownProblem, strayMetaPeers, streamsToMove,
} from "../../lib/natsScaleDown";

const member = (i: number) => ({ name: `nats-${i}`, node: `mesh-${i}` });
const members = (n: number) => Array.from({ length: n }, (_, i) => member(i));
const current = (...names: string[]) => names.map((name) => ({ name, current: true }));
const r3 = (stream: string, leader: string, followers: string[]): StreamPlacement => ({ stream, leader, replicas: current(...followers), configuredReplicas: 3 });

describe("NATS scale-down decisions", () => {
    it("the members an up no longer declares leave highest index first; a replaced node (same name) does not leave", () => {
        assert.deepStrictEqual(leavingMembers(members(5), members(3)), [member(4), member(3)]);
        assert.deepStrictEqual(leavingMembers(members(7), members(3)).map((m) => m.name), ["nats-6", "nats-5", "nats-4", "nats-3"]);
        assert.deepStrictEqual(leavingMembers(members(3), members(3)), []);
        assert.deepStrictEqual(leavingMembers(members(3), members(5)), []);
        // Index order is numeric, not by text.
        assert.deepStrictEqual(leavingMembers([...members(11)], members(9)).map((m) => m.name), ["nats-10", "nats-9"]);
    });

    describe("nodes leaving in the same up that replaces another", () => {
        const ids = (...values: string[]) => values;

        it("a staying member is replaced when its instance id changed or is not known yet; a leaving one never counts", () => {
            assert.deepStrictEqual(replacedMembers(members(5), ids("a", "b", "c", "d", "e"), members(3), ids("a", "B", "c")), [member(1)]);
            assert.deepStrictEqual(replacedMembers(members(5), ids("a", "b", "c", "d", "e"), members(3), ids("a", "b", "04da6b54-80e4-46f7-96ec-b56ff0331ba9")), [member(2)]);
            assert.deepStrictEqual(replacedMembers(members(5), ids("a", "b", "c", "d", "e"), members(3), ids("a", "b", "c")), []);
            // Matched by server name, not by position.
            assert.deepStrictEqual(replacedMembers([member(1), member(0)], ids("b", "a"), members(2), ids("a", "b")), []);
        });

        it("a state from before the ids were kept replaces nothing", () => {
            assert.deepStrictEqual(replacedMembers(members(5), undefined, members(3), ids("x", "y", "z")), []);
        });

        it("refused only when some leave and some are replaced, naming both and the way on", () => {
            assert.strictEqual(replacedWhileLeavingProblem([], [member(1)]), undefined);
            assert.strictEqual(replacedWhileLeavingProblem([member(4)], []), undefined);
            const problem = replacedWhileLeavingProblem([member(4), member(3)], [member(1)])!;
            assert.match(problem, /^refused: this up removes NATS nodes nats-4 \(mesh-4\), nats-3 \(mesh-3\) \(meshstack:natsNodeCount lowered\) and replaces nats-1 \(mesh-1\);/);
            assert.match(problem, /Nothing has been moved or deleted\. To go on, do one per up/);
            assert.match(replacedWhileLeavingProblem([member(3)], [member(0), member(2)])!, /^refused: this up removes NATS node nats-3 \(mesh-3\) .* and replaces nats-0 \(mesh-0\), nats-2 \(mesh-2\);/);
        });
    });

    describe("what is refused before anything moves", () => {
        const leaving = [member(4), member(3)];

        it("nothing when every stream fits the servers that stay and has a replica elsewhere", () => {
            assert.strictEqual(scaleDownProblem(leaving, 3, [r3("KV_a", "mesh-3", ["mesh-4", "mesh-0"]), { stream: "R1", leader: "mesh-0", replicas: [], configuredReplicas: 1 }], []), undefined);
            assert.strictEqual(scaleDownProblem([], 3, [{ stream: "R1", leader: "mesh-4", replicas: [], configuredReplicas: 1 }], []), undefined, "nobody leaves");
        });

        it("a stream with more replicas than servers would remain, a stream whose only replica is on a leaving node, and an unreadable placement, each named, with the way on", () => {
            const problem = scaleDownProblem(leaving, 3, [
                { stream: "WIDE", leader: "mesh-0", replicas: current("mesh-1", "mesh-2", "mesh-3", "mesh-4"), configuredReplicas: 5 },
                { stream: "ORDERS", leader: "mesh-3", replicas: [], configuredReplicas: 1 },
                { stream: "DARK", replicas: [], unavailable: "no leader" },
            ], []);
            assert.strictEqual(problem,
                "refused: this up removes NATS nodes nats-4 (mesh-4), nats-3 (mesh-3) (meshstack:natsNodeCount lowered to 3), and their streams cannot all move to the servers that stay: " +
                "WIDE: 5 replicas, and 3 servers would remain; ORDERS: the only replica of this stream is on mesh-3; DARK: where its replicas are could not be read (no leader), so it may be on a leaving node alone. " +
                "Nothing has been moved or deleted. To go on, give WIDE at most 3 replicas (`nats stream edit <stream> --replicas 3`); " +
                "give each R1 stream more replicas (`nats stream edit <stream> --replicas 3`), or add the streams to lose to meshstack:natsAcceptStreamLoss, then run pulumi up again; or set meshstack:natsNodeCount back");
        });

        it("one node leaving is named in the singular", () => {
            assert.match(scaleDownProblem([member(2)], 2, [{ stream: "ORDERS", leader: "mesh-2", replicas: [], configuredReplicas: 1 }], [])!, /^refused: this up removes NATS node nats-2 \(mesh-2\) \(meshstack:natsNodeCount lowered to 2\)/);
        });

        it("meshstack:natsAcceptStreamLoss lets named R1 and unreadable streams go (\"*\" every one), never a stream too wide", () => {
            const placements: StreamPlacement[] = [{ stream: "ORDERS", leader: "mesh-3", replicas: [], configuredReplicas: 1 }, { stream: "DARK", replicas: [], unavailable: "no leader" }];
            assert.strictEqual(scaleDownProblem(leaving, 3, placements, ["ORDERS", "DARK"]), undefined);
            assert.strictEqual(scaleDownProblem(leaving, 3, placements, ["*"]), undefined);
            assert.match(scaleDownProblem(leaving, 3, placements, ["ORDERS"])!, /: DARK: where its replicas are could not be read/);
            const wide = [{ stream: "WIDE", leader: "mesh-0", replicas: current("mesh-1", "mesh-2", "mesh-3", "mesh-4"), configuredReplicas: 5 }];
            assert.match(scaleDownProblem(leaving, 3, wide, ["*", "WIDE"])!, /: WIDE: 5 replicas, and 3 servers would remain\. .*give WIDE at most 3 replicas/);
        });

        it("names the streams in order, whatever order the cluster listed them in, and each way on only when it applies", () => {
            const wide = (stream: string): StreamPlacement => ({ stream, leader: "mesh-0", replicas: current("mesh-1", "mesh-2", "mesh-3", "mesh-4"), configuredReplicas: 5 });
            assert.strictEqual(scaleDownProblem(leaving, 3, [wide("ZED"), wide("ALPHA")], []),
                "refused: this up removes NATS nodes nats-4 (mesh-4), nats-3 (mesh-3) (meshstack:natsNodeCount lowered to 3), and their streams cannot all move to the servers that stay: " +
                "ALPHA: 5 replicas, and 3 servers would remain; ZED: 5 replicas, and 3 servers would remain. " +
                "Nothing has been moved or deleted. To go on, give ALPHA, ZED at most 3 replicas (`nats stream edit <stream> --replicas 3`), then run pulumi up again; or set meshstack:natsNodeCount back");
            const r1 = (stream: string, on: string): StreamPlacement => ({ stream, leader: on, replicas: [], configuredReplicas: 1 });
            assert.match(scaleDownProblem(leaving, 3, [r1("ZED", "mesh-4"), r1("ALPHA", "mesh-3")], [])!,
                /stay: ALPHA: the only replica of this stream is on mesh-3; ZED: the only replica of this stream is on mesh-4\. Nothing has been moved or deleted\. To go on, give each R1 stream more replicas/);
            assert.match(scaleDownProblem(leaving, 3, [{ stream: "DARK", replicas: [], unavailable: "no leader" }], [])!,
                /\. To go on, give each R1 stream more replicas \(`nats stream edit <stream> --replicas 3`\), or add the streams to lose to meshstack:natsAcceptStreamLoss, then run pulumi up again/);
        });

        it("an R1 stream on a node that stays is no concern", () => {
            assert.strictEqual(scaleDownProblem(leaving, 3, [{ stream: "ORDERS", leader: "mesh-1", replicas: [], configuredReplicas: 1 }], []), undefined);
        });
    });

    it("moves every stream with a replica on the node, led or followed, but one it alone holds", () => {
        const placements = [r3("A", "mesh-4", ["mesh-0", "mesh-1"]), r3("B", "mesh-0", ["mesh-4", "mesh-2"]), r3("C", "mesh-0", ["mesh-1", "mesh-2"]), { stream: "R1", leader: "mesh-4", replicas: [] }];
        assert.deepStrictEqual(streamsToMove("mesh-4", placements), ["A", "B"]);
    });

    it("a stream may give up a replica once it has a leader and every replica is current", () => {
        assert.strictEqual(notReadyToMove(r3("A", "mesh-4", ["mesh-0", "mesh-1"])), undefined);
        assert.strictEqual(notReadyToMove({ stream: "A", replicas: [], unavailable: "timeout" }), "no stream info (timeout)");
        assert.strictEqual(notReadyToMove({ stream: "A", replicas: current("mesh-0") }), "no leader");
        assert.strictEqual(notReadyToMove({ stream: "A", leader: "mesh-4", replicas: [{ name: "mesh-0", current: false, lag: 7 }, { name: "mesh-1", current: false, offline: true }] }),
            "the replica on mesh-0 is not current (7 behind), the replica on mesh-1 is offline");
    });

    it("a node is evacuated once each stream it held has no replica on it, all its replicas placed, a leader and every replica current", () => {
        const moved = ["A", "B", "A > worker"];
        assert.deepStrictEqual(evacuationPending("mesh-4", moved, [
            r3("A", "mesh-0", ["mesh-1", "mesh-2"]), r3("B", "mesh-1", ["mesh-0", "mesh-2"]), { stream: "A > worker", leader: "mesh-0", replicas: current("mesh-1", "mesh-2") },
            { stream: "UNRELATED", replicas: [], unavailable: "no leader" },
        ]), []);
        assert.deepStrictEqual(evacuationPending("mesh-4", moved, [
            r3("A", "mesh-0", ["mesh-4", "mesh-2"]),
            { stream: "B", leader: "mesh-1", replicas: current("mesh-0"), configuredReplicas: 3 },
            { stream: "A > worker", leader: "mesh-0", replicas: [{ name: "mesh-1", current: false, lag: 2 }, { name: "mesh-2", current: true }] },
        ]), [
            "A: still has a replica on mesh-4",
            "A > worker: the replica on mesh-1 is not current (2 behind)",
            "B: 2 of 3 replicas placed",
        ]);
        assert.deepStrictEqual(evacuationPending("mesh-4", ["A"], [r3("A", "mesh-4", ["mesh-0", "mesh-1"])]), ["A: still has a replica on mesh-4"], "its leader is a replica too");
        assert.deepStrictEqual(evacuationPending("mesh-4", ["A"], [{ stream: "A", leader: "mesh-0", replicas: [{ name: "mesh-1", current: false }, { name: "mesh-2", current: true }] }]),
            ["A: the replica on mesh-1 is not current"], "no lag reported, none named");
        assert.deepStrictEqual(evacuationPending("mesh-4", ["A"], []), ["A: not listed by the cluster"]);
        assert.deepStrictEqual(evacuationPending("mesh-4", ["A"], [{ stream: "A", replicas: current("mesh-0", "mesh-1") }]), ["A: no leader"]);
    });

    describe("the meta group settled after the desired states", () => {
        const routes = (entries: [string, string[] | undefined][]) => new Map(entries);
        const peer = (name: string, extra: object = {}) => ({ name, peer: `id-${name}`, current: true, ...extra });
        const unknownPeer = { name: "Server name unknown at this time (peerID: DWwl2ZJQ)", peer: "DWwl2ZJQ", current: false, offline: true };

        it("a member's route to a server that is no member keeps it pending, once per remote, and so does a member that did not report", () => {
            assert.deepStrictEqual(routesToNonMembers(members(3), routes([
                ["mesh-0", ["mesh-1", "mesh-2", "mesh-4", "mesh-4", "mesh-3"]],
                ["mesh-1", ["mesh-0", "mesh-2"]],
                ["mesh-2", undefined],
            ])), ["mesh-0 still has a route to mesh-3", "mesh-0 still has a route to mesh-4", "mesh-2 did not report its routes"]);
            assert.deepStrictEqual(routesToNonMembers(members(3), routes([["mesh-0", ["mesh-1"]], ["mesh-1", ["mesh-0", ""]]])), [
                "mesh-1 still has a route to a server not named yet", "mesh-2 did not report its routes",
            ]);
        });

        it("routes among members alone, or none at all, leave nothing pending", () => {
            assert.deepStrictEqual(routesToNonMembers(members(3), routes([["mesh-0", ["mesh-1", "mesh-2"]], ["mesh-1", ["mesh-0", "mesh-2"]], ["mesh-2", []]])), []);
        });

        it("the peers to remove are those no member is named by, a peer known only by its id among them", () => {
            const view = { leader: "mesh-2", peers: [peer("mesh-2"), peer("mesh-0"), peer("mesh-4", { offline: true }), peer("mesh-1"), unknownPeer] };
            assert.deepStrictEqual(strayMetaPeers(members(3), view), [peer("mesh-4", { offline: true }), unknownPeer]);
            assert.deepStrictEqual(strayMetaPeers(members(3), { leader: "mesh-0", peers: [peer("mesh-0"), peer("mesh-1"), peer("mesh-2")] }), []);
        });

        it("settled when its peers are exactly the members, each current, under a leader", () => {
            assert.deepStrictEqual(metaGroupPending(members(3), { leader: "mesh-1", peers: [peer("mesh-1"), peer("mesh-0"), peer("mesh-2")] }), []);
        });

        it("pending without a leader, for a member missing, offline or not current, and for every stray, each named", () => {
            assert.deepStrictEqual(metaGroupPending(members(3), { peers: [] }), ["the meta group has no leader"]);
            assert.deepStrictEqual(metaGroupPending(members(3), {
                leader: "mesh-0",
                peers: [peer("mesh-0"), peer("mesh-1", { current: false }), peer("mesh-3", { offline: true }), unknownPeer],
            }), [
                "mesh-1 is not current in the meta group",
                "mesh-2 is not in the meta group",
                "mesh-3 (peer id-mesh-3) is in the meta group and is no member",
                `${unknownPeer.name} (peer DWwl2ZJQ) is in the meta group and is no member`,
            ]);
            assert.deepStrictEqual(metaGroupPending(members(2), { leader: "mesh-0", peers: [peer("mesh-0"), peer("mesh-1", { offline: true, current: true })] }), ["mesh-1 is offline in the meta group"]);
        });
    });
});
