/**
 * The meta group's settling (providers/natsMetaGroup.ts) through its
 * serialized provider on four real nats-server processes on loopback, as an
 * `up` that lowers natsNodeCount 4 -> 3 runs it after every desired state.
 * nats-3 is still in the meta group, as a removed server is once its leader
 * took it back (seen on the box's VMs, issue 18), and still routed to: the
 * update must wait until no member routes to it, then remove it, by peer id.
 */
import * as assert from "assert";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { NatsMetaGroup, NatsMetaGroupInputs } from "../../providers/natsMetaGroup";
import { captureDynamicResource, CapturedDynamicResource, ProviderHost } from "../harness/dynamicProviders";
import { LoopbackNatsCluster } from "../support/natsCluster";
import { waitFor } from "../support/ports";

const STAYING = [0, 1, 2];
const LEAVING = 3;

describe("NatsMetaGroup: the meta group settled to the members after a 4 -> 3 scale-down, on real nats-server (serialized provider)", function () {
    this.timeout(120_000);
    let cluster: LoopbackNatsCluster;
    let captured: CapturedDynamicResource;
    const hosts: ProviderHost[] = [];

    const hostname = (i: number) => cluster.node(i).hostname;
    const inputsFor = (indexes: number[], timeoutSeconds = 60): NatsMetaGroupInputs => ({
        ...(captured.inputs as NatsMetaGroupInputs),
        members: indexes.map((i) => ({ name: `nats-${i}`, node: hostname(i) })),
        servers: cluster.clientUrls(indexes),
        timeoutSeconds,
    });
    const hostWith = async () => {
        const host = await ProviderHost.start(captured.serializedProvider);
        hosts.push(host);
        return host;
    };
    type MetaCluster = { leader?: string; peer?: string; cluster_size?: number; replicas?: { name: string; peer: string }[] };
    const metaGroupOf = async (index: number) => ((await (await cluster.monitor(index, "/jsz")).json()) as { meta_cluster?: MetaCluster }).meta_cluster;
    /** The meta group as its leader sees it: only the leader lists every peer with its id. */
    const leaderView = async () => {
        const leader = (await metaGroupOf(0))?.leader;
        const index = cluster.memberIndexes.find((i) => hostname(i) === leader);
        assert.ok(index !== undefined, `a meta leader among the servers (${leader})`);
        return metaGroupOf(index);
    };

    before(async () => {
        cluster = await LoopbackNatsCluster.create(4);
        await cluster.startAll();
        captured = await captureDynamicResource(() => new NatsMetaGroup("nats-meta-group", {
            members: cluster.memberIndexes.map((i) => ({ name: `nats-${i}`, node: hostname(i) })), servers: cluster.clientUrls(),
            tlsServerName: cluster.serviceName, caPem: cluster.clientCa.certPem, certPem: cluster.client.certPem, keyPem: cluster.client.keyPem,
            systemPassword: cluster.systemPassword, timeoutSeconds: 60,
        }));
    });

    after(async () => {
        for (const host of hosts) await host.close();
        await cluster?.destroy();
    });

    it("its key and the system password are secret; fewer members is an update, never a replacement", async () => {
        assert.deepStrictEqual(captured.secretInputs.sort(), ["keyPem", "systemPassword"]);
        const diff = await (await hostWith()).diff("id", inputsFor(cluster.memberIndexes), inputsFor(STAYING));
        assert.deepStrictEqual([diff.changes, diff.replaces], [true, []]);
    });

    it("refuses bad inputs in the preview, every one at once, naming each", async () => {
        const host = await hostWith();
        await assert.rejects(host.checkedInputs(inputsFor(STAYING), { ...inputsFor(STAYING), members: [{ name: "nats-1", node: hostname(1) }], servers: ["nats://x"], timeoutSeconds: 0 }), (err: Error) => {
            assert.match(err.message, /members: got .*allowed: \{ name: "nats-<index>"/);
            assert.match(err.message, /servers: got \["nats:\/\/x"\]; allowed: one or more tls:\/\/host:port URLs/);
            assert.match(err.message, /timeoutSeconds: got 0; allowed: a positive whole number of seconds/);
            return true;
        });
    });

    it("with nobody leaving, asks no server", async () => {
        const host = await hostWith();
        const nowhere = { ...inputsFor(STAYING), servers: ["tls://127.0.0.1:9"] };
        await host.update("id", nowhere, nowhere);
        assert.deepStrictEqual(host.logs.filter((line) => line.startsWith("[nats-meta-group]")), []);
    });

    it("waits while a member still routes to the server that left, then removes it from the meta group by peer id: the meta group is the 3 members", async () => {
        // nats-3 may be the meta leader itself (one run in four): a leader lists the others as replicas and its own id apart.
        let leavingPeer: string | undefined;
        await waitFor("the meta leader to name nats-3's peer id", async () => {
            const view = await leaderView();
            const peers = [{ name: view?.leader, peer: view?.peer }, ...(view?.replicas ?? [])];
            return !!(leavingPeer = peers.find((p) => p.name === hostname(LEAVING))?.peer);
        }, 20_000, 200);
        const host = await hostWith();
        const settling = host.update("id", inputsFor(cluster.memberIndexes), inputsFor(STAYING));
        settling.catch(() => undefined);
        await waitFor("a progress line naming a member's route to nats-3", async () => host.logs.some((line) => line.includes(`still has a route to ${hostname(LEAVING)}`)), 30_000, 100);
        assert.strictEqual((await metaGroupOf(0))?.cluster_size, 4, "nothing removed while a member routes to it");
        // The members' agents apply their desired states (routes to each other alone), and nats-3 can no longer be reached.
        for (const i of STAYING) cluster.routeTo(i, STAYING);
        await cluster.stop(LEAVING, "SIGKILL");
        await settling;
        const progress = host.logs.filter((line) => line.startsWith("[nats-meta-group]"));
        assert.ok(progress.some((line) => new RegExp(`^\\[nats-meta-group\\] attempt 1 at [\\d.]+s: .*${hostname(0)} still has a route to ${hostname(LEAVING)}.*; giving up in \\d+s$`).test(line)), progress.join("\n"));
        assert.ok(progress.includes(`[nats-meta-group] ${hostname(LEAVING)} (peer ${leavingPeer}): removed from the JetStream meta group`), progress.join("\n"));
        assert.ok(progress.some((line) => /the JetStream meta group is the 3 members, each current, and no member routes to another server \(\d+\.\ds\)$/.test(line)), progress.join("\n"));
        // The leader's view settled the wait; each follower counts 3 once it has applied the removal.
        for (const i of STAYING) await waitFor(`server ${i} to count 3 peers`, async () => (await metaGroupOf(i))?.cluster_size === 3, 10_000, 100);
        const nc = await connect({
            servers: cluster.clientUrls(STAYING),
            tls: { ca: cluster.clientCa.certPem, cert: cluster.client.certPem, key: cluster.client.keyPem, servername: cluster.serviceName },
            timeout: 3000,
        });
        try {
            const jsm = await jetstreamManager(nc, { timeout: 5000 });
            await waitFor("a new R3 stream on the 3 members", async () => !!(await jsm.streams.add({ name: "AFTER", subjects: ["after.>"], num_replicas: 3 })), 20_000, 250);
        } finally {
            await nc.close().catch(() => undefined);
        }
    });

    it("fails at its deadline naming the member that did not report, and leaves the meta group as it is", async () => {
        await cluster.stop(2, "SIGKILL");
        const host = await hostWith();
        await assert.rejects(host.update("id", inputsFor([...STAYING, LEAVING], 3), inputsFor(STAYING, 3)), (err: Error) => {
            assert.match(err.message, new RegExp(`^the JetStream meta group did not settle to the 3 members before the deadline \\(meshstack:natsRejoinTimeoutSeconds\\): ${hostname(2)} did not report its routes\\. The leaving instances have not been deleted`));
            return true;
        });
        assert.strictEqual((await metaGroupOf(0))?.cluster_size, 3);
    });
});
