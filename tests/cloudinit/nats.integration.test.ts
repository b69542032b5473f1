import * as assert from "assert";
import * as tls from "tls";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { KV, Kvm } from "@nats-io/kv";
import { NATS_SERVER_RELEASE } from "../../cloudinit/nats";
import { JetStreamKv, JetStreamKvOutputs } from "../../providers/jetstreamKv";
import { captureDynamicResource, CapturedDynamicResource, ProviderHost } from "../harness/dynamicProviders";
import { LoopbackNatsCluster } from "../support/natsCluster";
import { assertReadsBack, putWhenAcknowledged } from "../support/kvReads";
import { waitFor } from "../support/ports";

/** v2.10+ route pooling: 3 pooled routes per peer, plus one pinned to the system account. */
const ROUTES_PER_PEER = 3 + 1;
const BUCKET = "control";

type NatsConnection = Awaited<ReturnType<typeof connect>>;

/**
 * Opens TLS to a route port presenting `identity`. The route port starts
 * with the TLS handshake; TLS 1.3 reports a refused client certificate after
 * it, as an alert on the next read, so the probe writes and then listens.
 */
function routeHandshake(port: number, identity: { certPem: string; keyPem: string }, caPem: string): Promise<"accepted" | string> {
    return new Promise((resolve) => {
        const secure = tls.connect({ port, host: "127.0.0.1", ca: caPem, cert: identity.certPem, key: identity.keyPem, checkServerIdentity: () => undefined });
        const timer = setTimeout(() => {
            secure.destroy();
            resolve("accepted");
        }, 1000);
        secure.once("secureConnect", () => secure.write("PING\r\n"));
        secure.once("error", (err) => {
            clearTimeout(timer);
            resolve(err.message);
        });
    });
}

describe(`NATS cluster on loopback (nats-server ${NATS_SERVER_RELEASE.version}, configs and certificates as deployed)`, function () {
    this.timeout(90_000);
    let cluster: LoopbackNatsCluster;
    let nc: NatsConnection;
    let kv: KV;
    let captured: CapturedDynamicResource;
    let host: ProviderHost;
    let state: { id: string; outs: JetStreamKvOutputs };
    const written = new Map<string, string>();

    const clientOptions = () => ({
        servers: cluster.clientUrls(),
        // Dialling an IP, verifying the name every data-plane certificate carries: what the deployer does with public IPs.
        tls: { ca: cluster.clientCa.certPem, cert: cluster.client.certPem, key: cluster.client.keyPem, servername: cluster.serviceName },
        timeout: 3000,
        reconnectTimeWait: 200,
        maxReconnectAttempts: -1,
    });

    async function streamInfo() {
        const jsm = await jetstreamManager(nc, { timeout: 3000 });
        return jsm.streams.info(`KV_${BUCKET}`);
    }

    async function indexOf(serverName: string): Promise<number> {
        const index = cluster.memberIndexes.find((i) => cluster.node(i).hostname === serverName);
        if (index === undefined) throw new Error(`no member named ${serverName}`);
        return index;
    }

    before(async () => {
        cluster = await LoopbackNatsCluster.create();
        await cluster.startAll();
        nc = await connect(clientOptions());
        captured = await captureDynamicResource(() => new JetStreamKv("control", {
            servers: cluster.clientUrls(), tlsServerName: cluster.serviceName, caPem: cluster.clientCa.certPem, certPem: cluster.client.certPem, keyPem: cluster.client.keyPem,
            bucket: BUCKET, replicas: 1, history: 5, timeoutSeconds: 60,
        }));
        host = await ProviderHost.start(captured.serializedProvider);
    });

    after(async () => {
        await nc?.close().catch(() => undefined);
        await host?.close();
        await cluster?.destroy();
    });

    it("forms: every server routes to the two others (pooled) and JetStream elects one meta leader", async () => {
        const statuses = await Promise.all(cluster.memberIndexes.map((i) => cluster.status(i)));
        statuses.forEach((status, i) => {
            const others = cluster.memberIndexes.filter((j) => j !== i).map((j) => cluster.node(j).hostname);
            assert.deepStrictEqual([...new Set(status.routes.map((r) => r.remoteName))].sort(), others);
            assert.strictEqual(status.numRoutes, others.length * ROUTES_PER_PEER);
        });
        assert.ok(statuses[0].metaLeader);
        assert.ok(statuses.every((s) => s.metaLeader === statuses[0].metaLeader));
    });

    it("is ready by the probe NATS's chart uses: /healthz?js-server-only=true", async () => {
        for (const i of cluster.memberIndexes) {
            const response = await cluster.monitor(i, "/healthz?js-server-only=true");
            assert.deepStrictEqual([response.status, ((await response.json()) as { status: string }).status], [200, "ok"]);
        }
    });

    it("refuses a client without a certificate", async () => {
        for (const i of cluster.memberIndexes) {
            await assert.rejects(
                connect({ servers: [cluster.clientUrl(i)], reconnect: false, timeout: 3000, tls: { ca: cluster.clientCa.certPem, servername: cluster.serviceName } }),
                // TLS 1.3: the alert or, when the server closes first, a reset.
                /certificate required|ECONNRESET/,
            );
            await waitFor(`server ${i} to log the refusal`, async () => /client didn't provide a certificate/.test(cluster.logs(i)), 5000);
        }
    });

    it("refuses a client certificate on the route port (separate route CA)", async () => {
        const port = cluster.node(0).ports.route;
        assert.match(await routeHandshake(port, cluster.client, cluster.routeCa.certPem), /alert unknown ca/);
        assert.strictEqual(await routeHandshake(port, cluster.routeIdentity(1), cluster.routeCa.certPem), "accepted", "control: a route certificate gets through TLS");
    });

    it("refuses a server that dials the routes with a wrong cluster password", async () => {
        const outsider = await cluster.outsider({ password: "wrongPassword0123456789abcdefgh" });
        cluster.start(outsider);
        try {
            await waitFor("the cluster to reject the outsider's route", async () => /Authorization Violation/i.test(cluster.logs(outsider)), 15_000);
            const outsiderName = cluster.node(outsider).hostname;
            for (const i of cluster.memberIndexes) {
                assert.ok(!(await cluster.status(i)).routes.some((r) => r.remoteName === outsiderName));
            }
        } finally {
            await cluster.stop(outsider, "SIGKILL");
        }
    });

    it("provider: creates the KV bucket at R1 through the serialized provider", async () => {
        assert.ok(captured.secretInputs.includes("keyPem"));
        state = await host.checkAndCreate(captured.inputs);
        assert.strictEqual(state.outs.peers.length, 1);
        kv = await new Kvm(jetstream(nc, { timeout: 3000 })).open(BUCKET);
        for (let i = 0; i < 20; i++) {
            written.set(`member.${i}`, `value-${i}`);
            await kv.put(`member.${i}`, `value-${i}`);
        }
        assert.strictEqual((await streamInfo()).config.num_replicas, 1);
    });

    it("provider: raising replicas to 3 is an in-place update that keeps every key", async () => {
        const news = { ...(await host.check(state.outs, { ...captured.inputs, replicas: 3 })).inputs };
        const diff = await host.diff(state.id, state.outs, news);
        assert.deepStrictEqual([diff.changes, diff.replaces], [true, []]);
        const updated = await host.update(state.id, state.outs, news);
        state = { id: state.id, outs: updated.outs };
        assert.deepStrictEqual(updated.outs.peers, cluster.memberIndexes.map((i) => cluster.node(i).hostname));
        const info = await streamInfo();
        assert.strictEqual(info.config.num_replicas, 3);
        assert.strictEqual(info.cluster?.replicas?.filter((r) => r.current).length, 2);
        await assertReadsBack(kv, written, "every value to read back", 20_000, 200);
    });

    it("provider: a new bucket name is a replacement", async () => {
        const diff = await host.diff(state.id, state.outs, { ...state.outs, bucket: "other" });
        assert.deepStrictEqual(diff.replaces, ["bucket"]);
    });

    let stopped: number[] = [];

    it("chaos: with one server stopped (the stream leader), reads and writes still succeed", async () => {
        const leader = await indexOf((await streamInfo()).cluster!.leader!);
        await cluster.stop(leader, "SIGTERM");
        stopped = [leader];
        await putWhenAcknowledged(kv, "chaos.one-down", "written-with-2-of-3", "a write with one server down", 20_000, 200, written);
        await assertReadsBack(kv, written, "every value to read back", 20_000, 200);
    });

    it("chaos: with two servers stopped, a write fails with an error (fail closed)", async () => {
        const second = cluster.memberIndexes.find((i) => !stopped.includes(i))!;
        await cluster.stop(second, "SIGKILL");
        stopped.push(second);
        await assert.rejects(kv.put("chaos.two-down", "must-not-be-acknowledged"));
    });

    it("chaos: restarted servers rejoin and the data written before is there", async () => {
        stopped.forEach((i) => cluster.start(i));
        await cluster.waitFormed(cluster.memberIndexes, 30_000);
        await waitFor("all three replicas of the bucket to be current", async () => {
            const info = await streamInfo();
            return !!info.cluster?.leader && info.cluster.replicas?.filter((r) => r.current).length === 2;
        }, 30_000, 200);
        await assertReadsBack(kv, written, "every value to read back", 20_000, 200);
    });

    it("provider: delete removes the bucket (and read then reports it gone)", async () => {
        await host.delete(state.id, state.outs);
        await assert.rejects(streamInfo(), /not found/i);
        const read = await host.read(state.id, state.outs);
        assert.strictEqual(read.id, "");
    });
});
