/**
 * The meta group's settling (providers/natsMetaGroup.ts settleMetaGroup)
 * against a fake system-account connection, for what a loopback cluster
 * cannot be made to show on demand: a removal answered "not a member" or
 * refused, and the order of the requests. The answers' shapes are
 * nats-server's: a monitoring reply is `{ server, data }` (ServerAPIResponse),
 * `meta_cluster` lists the leader apart from its replicas, each with its
 * `peer` id, and 10044 is the meta leader's "peer not a member"; the
 * integration test reads the same shapes from real servers.
 */
import * as assert from "assert";
import { TimeoutError } from "@nats-io/nats-core";
import { settleMetaGroup } from "../../providers/natsMetaGroup";
import { captureConsoleLog } from "../support/consoleLog";

const MEMBERS = [0, 1, 2].map((i) => ({ name: `nats-${i}`, node: `mesh-${i}` }));
const NOT_A_MEMBER = { error: { code: 400, err_code: 10044, description: "peer not a member" } };

interface Replica {
    name: string;
    peer: string;
    current: boolean;
    offline?: boolean;
}

/** A cluster as the system account sees it: each server's routes (an Error: it does not answer), the meta group, and what a removal is answered. */
class FakeCluster {
    readonly requests: { subject: string; body: any }[] = [];
    removals: (object | Error)[] = [];
    /** Called before each request is answered: the cluster moving on. */
    onRequest: (count: number) => void = () => undefined;

    constructor(public routes: Record<string, string[] | Error>, public meta: { leader?: string; peer?: string; replicas: Replica[] }) {}

    async request(subject: string, body: string) {
        const parsed = JSON.parse(body);
        this.requests.push({ subject, body: parsed });
        this.onRequest(this.requests.length);
        const answer = (value: object) => ({ string: () => JSON.stringify(value) });
        if (subject === "$SYS.REQ.SERVER.PING.ROUTEZ") {
            const routes = this.routes[parsed.server_name];
            if (routes instanceof Error) throw routes;
            return answer({ server: { name: parsed.server_name }, data: { routes: routes.map((remote_name) => ({ remote_name })) } });
        }
        if (subject === "$SYS.REQ.SERVER.PING.JSZ") {
            if (!this.meta.leader) throw new TimeoutError();
            return answer({ server: { name: this.meta.leader }, data: { meta_cluster: { ...this.meta, cluster_size: this.meta.replicas.length + 1 } } });
        }
        if (subject === "$JS.API.SERVER.REMOVE") {
            const reply = this.removals.shift() ?? { success: true };
            if (reply instanceof Error) throw reply;
            if ((reply as { success?: boolean }).success) this.meta.replicas = this.meta.replicas.filter((r) => r.peer !== parsed.peer_id);
            return answer(reply);
        }
        throw new Error(`unexpected subject ${subject}`);
    }

    subjects(): string[] {
        return this.requests.map((r) => r.subject.replace("$SYS.REQ.SERVER.PING.", "").replace("$JS.API.SERVER.", ""));
    }
}

const replica = (name: string, extra: Partial<Replica> = {}): Replica => ({ name, peer: `id-${name}`, current: true, ...extra });
const routedAmongMembers = () => ({ "mesh-0": ["mesh-1", "mesh-2"], "mesh-1": ["mesh-0", "mesh-2"], "mesh-2": ["mesh-0", "mesh-1"] });

describe("settleMetaGroup: the meta group made the members alone, once no member routes to another server", function () {
    this.timeout(20_000);
    const logged = captureConsoleLog();

    it("removes nothing while a member routes to a leaving server; once none does, removes each stray by peer id and ends when the meta group is the members", async () => {
        const cluster = new FakeCluster(
            { ...routedAmongMembers(), "mesh-0": ["mesh-1", "mesh-2", "mesh-4", "mesh-3", "mesh-3"] },
            { leader: "mesh-1", peer: "id-mesh-1", replicas: [replica("mesh-0"), replica("mesh-2"), replica("Server name unknown at this time (peerID: DWwl2ZJQ)", { peer: "DWwl2ZJQ", current: false, offline: true })] },
        );
        // mesh-0's agent drops nats-3's route once the first round of questions is over.
        cluster.onRequest = (count) => count === 4 && (cluster.routes["mesh-0"] = ["mesh-1", "mesh-2"]);
        await settleMetaGroup(MEMBERS, cluster, Date.now() + 60_000);
        const lines = logged.lines;
        assert.deepStrictEqual(cluster.subjects(), ["ROUTEZ", "ROUTEZ", "ROUTEZ", "ROUTEZ", "ROUTEZ", "ROUTEZ", "JSZ", "REMOVE", "ROUTEZ", "ROUTEZ", "ROUTEZ", "JSZ"]);
        assert.deepStrictEqual(cluster.requests.slice(0, 3).map((r) => r.body), MEMBERS.map((m) => ({ server_name: m.node, exact_match: true })), "each member asked by its exact name");
        assert.deepStrictEqual(cluster.requests[6].body, { leader_only: true });
        assert.deepStrictEqual(cluster.requests[7].body, { peer: "", peer_id: "DWwl2ZJQ" }, "removed by its peer id: the leader no longer knows its name");
        const first = /^\[nats-meta-group\] attempt 1 at (\d+\.\d)s: mesh-0 still has a route to mesh-3; mesh-0 still has a route to mesh-4; giving up in (\d+)s$/.exec(lines[0]);
        assert.ok(first, lines[0]);
        // Seconds since the wait began, and until its deadline (60 s away): a fake cluster answers at once.
        assert.ok(Number(first[1]) < 5 && Number(first[2]) > 55 && Number(first[2]) <= 60, lines[0]);
        assert.strictEqual(lines[1], "[nats-meta-group] Server name unknown at this time (peerID: DWwl2ZJQ) (peer DWwl2ZJQ): removed from the JetStream meta group");
        const second = /^\[nats-meta-group\] attempt 2 at (\d+\.\d)s: Server name unknown at this time \(peerID: DWwl2ZJQ\) \(peer DWwl2ZJQ\) is in the meta group and is no member; giving up in \d+s$/.exec(lines[2]);
        assert.ok(second && Number(second[1]) >= 1.9 && Number(second[1]) < 20, `one 2 s pause before the second attempt: ${lines[2]}`);
        const done = /^\[nats-meta-group\] the JetStream meta group is the 3 members, each current, and no member routes to another server \((\d+\.\d)s\)$/.exec(lines[3]);
        assert.ok(done && Number(done[1]) >= 4 && Number(done[1]) < 20, `two 2 s pauses, then done: ${lines[3]}`);
        assert.strictEqual(lines.length, 4);
    });

    it("already settled: one round of questions, no removal", async () => {
        const cluster = new FakeCluster(routedAmongMembers(), { leader: "mesh-0", peer: "id-mesh-0", replicas: [replica("mesh-1"), replica("mesh-2")] });
        await settleMetaGroup(MEMBERS, cluster, Date.now() + 60_000);
        const lines = logged.lines;
        assert.deepStrictEqual(cluster.subjects(), ["ROUTEZ", "ROUTEZ", "ROUTEZ", "JSZ"]);
        assert.strictEqual(lines.length, 1);
    });

    it("'not a member' to a removal is no failure (an answer lost in an election): the next view decides", async () => {
        const cluster = new FakeCluster(routedAmongMembers(), { leader: "mesh-0", peer: "id-mesh-0", replicas: [replica("mesh-1"), replica("mesh-2"), replica("mesh-4", { offline: true })] });
        cluster.removals = [NOT_A_MEMBER];
        cluster.onRequest = (count) => count === 6 && (cluster.meta.replicas = cluster.meta.replicas.filter((r) => r.name !== "mesh-4"));
        await settleMetaGroup(MEMBERS, cluster, Date.now() + 60_000);
        const lines = logged.lines;
        assert.deepStrictEqual(cluster.subjects(), ["ROUTEZ", "ROUTEZ", "ROUTEZ", "JSZ", "REMOVE", "ROUTEZ", "ROUTEZ", "ROUTEZ", "JSZ"]);
        assert.match(lines.at(-1)!, /the JetStream meta group is the 3 members/);
    });

    it("a removal refused for another reason fails at once, naming the peer and the way on", async () => {
        const cluster = new FakeCluster(routedAmongMembers(), { leader: "mesh-0", peer: "id-mesh-0", replicas: [replica("mesh-1"), replica("mesh-2"), replica("mesh-4", { offline: true })] });
        cluster.removals = [{ error: { code: 403, err_code: 10039, description: "not authorized" } }];
        await assert.rejects(settleMetaGroup(MEMBERS, cluster, Date.now() + 60_000),
            /^Error: mesh-4 \(peer id-mesh-4\) could not be removed from the JetStream meta group: \$JS\.API\.SERVER\.REMOVE: not authorized \(10039\)\. Run pulumi up again, or remove it with nats server cluster peer-remove$/);
    });

    it("at the deadline, fails naming every member that did not report and every route still open, and removes nothing", async () => {
        const cluster = new FakeCluster({ "mesh-0": ["mesh-1", "mesh-4"], "mesh-1": new TimeoutError(), "mesh-2": ["mesh-0", "mesh-3"] }, { leader: "mesh-0", peer: "id-mesh-0", replicas: [replica("mesh-4")] });
        await assert.rejects(settleMetaGroup(MEMBERS, cluster, Date.now()), (err: Error) => {
            assert.strictEqual(err.message, "the JetStream meta group did not settle to the 3 members before the deadline (meshstack:natsRejoinTimeoutSeconds): " +
                "mesh-0 still has a route to mesh-4; mesh-1 did not report its routes; mesh-2 still has a route to mesh-3. The leaving instances have not been deleted. " +
                "Run pulumi up again once the members' agents have applied their desired states, or raise meshstack:natsRejoinTimeoutSeconds");
            return true;
        });
        assert.deepStrictEqual(cluster.subjects(), ["ROUTEZ", "ROUTEZ", "ROUTEZ"]);
    });

    it("with no meta leader answering (an election), waits for one: 'no leader' is pending", async () => {
        const cluster = new FakeCluster(routedAmongMembers(), { replicas: [] });
        await assert.rejects(settleMetaGroup(MEMBERS, cluster, Date.now()), /: the meta group has no leader\. The leaving instances/);
    });
});
