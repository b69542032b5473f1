/**
 * The rejoin wait (providers/natsRejoin.ts) through its serialized provider,
 * against a real 3-node nats-server cluster on loopback: a node rebuilt with
 * an empty store under its old name, one that never comes back, and a URL
 * that reaches the wrong server.
 */
import * as assert from "assert";
import * as fs from "fs";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { KV, Kvm } from "@nats-io/kv";
import { NatsRejoin, NatsRejoinOutputs } from "../providers/natsRejoin";
import { captureDynamicResource, CapturedDynamicResource, ProviderHost } from "./harness/dynamicProviders";
import { LoopbackNatsCluster } from "./support/natsCluster";

type NatsConnection = Awaited<ReturnType<typeof connect>>;
const BUCKET = "rejoin";
const REBUILT = 1;

describe("NatsRejoin on a real 3-node cluster (serialized provider)", function () {
    this.timeout(120_000);
    let cluster: LoopbackNatsCluster;
    let nc: NatsConnection;
    let kv: KV;
    let captured: CapturedDynamicResource;
    let host: ProviderHost;
    let state: { id: string; outs: NatsRejoinOutputs };

    async function replicaOnRebuilt() {
        const info = await (await jetstreamManager(nc, { timeout: 3000 })).streams.info(`KV_${BUCKET}`);
        const name = cluster.node(REBUILT).hostname;
        return info.cluster?.leader === name ? { name, current: true, offline: false } : info.cluster?.replicas?.find((r) => r.name === name);
    }

    before(async () => {
        cluster = await LoopbackNatsCluster.create();
        await cluster.startAll();
        nc = await connect({
            servers: cluster.clientUrls([0, 2]),
            tls: { ca: cluster.clientCa.certPem, cert: cluster.client.certPem, key: cluster.client.keyPem, servername: cluster.serviceName },
            timeout: 3000, reconnectTimeWait: 200, maxReconnectAttempts: -1,
        });
        kv = await new Kvm(jetstream(nc, { timeout: 5000 })).create(BUCKET, { replicas: 3 });
        for (let i = 0; i < 50; i++) await kv.put(`before.${i}`, `value-${i}`);
        captured = await captureDynamicResource(() => new NatsRejoin(`nats-${REBUILT}-rejoin`, {
            node: cluster.node(REBUILT).hostname, instanceId: "1001", server: cluster.clientUrl(REBUILT), tlsServerName: cluster.serviceName,
            caPem: cluster.clientCa.certPem, certPem: cluster.client.certPem, keyPem: cluster.client.keyPem, timeoutSeconds: 60,
        }));
        host = await ProviderHost.start(captured.serializedProvider);
    });

    after(async () => {
        await nc?.close().catch(() => undefined);
        await host?.close();
        await cluster?.destroy();
    });

    it("create: returns once the node serves JetStream, naming the streams it holds; the client key is secret", async () => {
        assert.ok(captured.secretInputs.includes("keyPem"));
        state = await host.checkAndCreate(captured.inputs);
        assert.deepStrictEqual(state.outs.streams, [`KV_${BUCKET}`]);
    });

    it("diff: a new instance id is a wait, never a replacement; the same inputs are no change", async () => {
        assert.strictEqual((await host.diff(state.id, state.outs, captured.inputs)).changes, false);
        const diff = await host.diff(state.id, state.outs, { ...captured.inputs, instanceId: "1002" });
        assert.deepStrictEqual([diff.changes, diff.diffs, diff.replaces], [true, ["instanceId"], []]);
    });

    it("a node rebuilt with an empty store under its name: the update returns only once its replica is current again", async () => {
        await cluster.stop(REBUILT, "SIGKILL");
        fs.rmSync(cluster.layout(REBUILT).storeDir, { recursive: true, force: true });
        for (let i = 0; i < 50; i++) await kv.put(`while-away.${i}`, `value-${i}`);
        cluster.start(REBUILT);
        const logged = host.logs.length;
        const updated = await host.update(state.id, state.outs, { ...captured.inputs, instanceId: "1002" });
        state = { id: state.id, outs: updated.outs };
        const replica = await replicaOnRebuilt();
        assert.deepStrictEqual([replica?.current, replica?.offline ?? false], [true, false], JSON.stringify(replica));
        assert.deepStrictEqual(updated.outs.streams, [`KV_${BUCKET}`]);
        const progress = host.logs.slice(logged);
        assert.ok(progress.some((line) => /^\[nats-rejoin\] meshtest-1: attempt 1 at .*giving up in \d+s$/.test(line)), `it waited, and said so: ${progress.join("\n")}`);
        assert.ok(progress.some((line) => /meshtest-1: serving JetStream, 1 stream replica\(s\) on it current/.test(line)), progress.join("\n"));
        // What the rebuilt node holds now, it got from the others: read through it alone.
        const through = await connect({ servers: [cluster.clientUrl(REBUILT)], tls: { ca: cluster.clientCa.certPem, cert: cluster.client.certPem, key: cluster.client.keyPem, servername: cluster.serviceName }, timeout: 3000 });
        try {
            const status = await (await new Kvm(jetstream(through, { timeout: 5000 })).open(BUCKET)).status();
            assert.strictEqual(status.values, 100);
        } finally {
            await through.close();
        }
    });

    it("a URL that reaches another server: fails at once, naming both", async () => {
        const started = Date.now();
        await assert.rejects(host.update(state.id, state.outs, { ...state.outs, server: cluster.clientUrl(0), instanceId: "1003" }),
            /rejoin of NATS node meshtest-1: tls:\/\/127\.0\.0\.1:\d+ is served by "meshtest-0", not meshtest-1/);
        assert.ok(Date.now() - started < 10_000, "no wait for what no wait fixes");
    });

    it("a node that does not come back: the update fails at its own deadline, naming the node and the next step", async () => {
        await cluster.stop(REBUILT, "SIGKILL");
        const started = Date.now();
        await assert.rejects(host.update(state.id, state.outs, { ...state.outs, instanceId: "1004", timeoutSeconds: 5 }),
            /NATS node meshtest-1 \(tls:\/\/127\.0\.0\.1:\d+\) was not current within timeoutSeconds=5: not serving JetStream: .*Do not replace another NATS node until it is; run pulumi up again to wait again/);
        assert.ok(Date.now() - started < 20_000, "the deadline holds");
    });
});
