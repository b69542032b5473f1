/**
 * The rejoin wait (providers/natsRejoin.ts) and the rollout guard's gate on
 * it (providers/natsImageRollout.ts), through their serialized providers,
 * against a real 3-node nats-server cluster on loopback and MinIO for the
 * runtime bucket: a node rebuilt with an empty store under its old name, one
 * that does not come back (and the guard then refusing to move another
 * node), and a URL that reaches the wrong server.
 */
import * as assert from "assert";
import * as fs from "fs";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { KV, Kvm } from "@nats-io/kv";
import { NatsImageRollout } from "../../providers/natsImageRollout";
import { NatsRejoin, NatsRejoinOutputs } from "../../providers/natsRejoin";
import { rejoinPendingKey } from "../../lib/runtimeChannel";
import { captureDynamicResource, CapturedDynamicResource, ProviderHost } from "../harness/dynamicProviders";
import { putWhenAcknowledged } from "../support/kvReads";
import { MinioServer } from "../support/minio";
import { LoopbackNatsCluster } from "../support/natsCluster";

type NatsConnection = Awaited<ReturnType<typeof connect>>;
const BUCKET = "rejoin";
const REBUILT = 1;
const RUNTIME_BUCKET = "meshstack-test-runtime";
const OLD = "linode/debian12";
const NEW = "linode/debian13";

describe("NatsRejoin on a real 3-node cluster (serialized provider)", function () {
    this.timeout(120_000);
    let cluster: LoopbackNatsCluster;
    let nc: NatsConnection;
    let kv: KV;
    let captured: CapturedDynamicResource;
    let host: ProviderHost;
    let state: { id: string; outs: NatsRejoinOutputs };
    let minio: MinioServer;
    let guard: CapturedDynamicResource;
    let guardHost: ProviderHost;
    const markKey = () => rejoinPendingKey("test", cluster.node(REBUILT).hostname);
    const mark = async () => {
        const body = await minio.getObject(RUNTIME_BUCKET, markKey());
        return body && JSON.parse(body.toString("utf8"));
    };
    const images = (moved: number[]) => Object.fromEntries([0, 1, 2].map((i) => [`nats-${i}`, moved.includes(i) ? NEW : OLD]));
    /** The guard's update in an `up` that moves `moved` (from all on OLD), as the engine calls it. */
    const guardUpdate = (moved: number[], inputs = guard.inputs) => guardHost.update("guard", { images: images([]) }, { ...inputs, images: images(moved) });

    async function replicaOnRebuilt() {
        const info = await (await jetstreamManager(nc, { timeout: 3000 })).streams.info(`KV_${BUCKET}`);
        const name = cluster.node(REBUILT).hostname;
        return info.cluster?.leader === name ? { name, current: true, offline: false } : info.cluster?.replicas?.find((r) => r.name === name);
    }

    before(async () => {
        minio = await MinioServer.start();
        await minio.createBucket(RUNTIME_BUCKET);
        const runtime = { endpoint: minio.endpoint, region: minio.region, bucket: RUNTIME_BUCKET, ...minio.credentials };
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
            ...runtime, key: markKey(),
        }));
        host = await ProviderHost.start(captured.serializedProvider);
        guard = await captureDynamicResource(() => new NatsImageRollout("nats-image-rollout", {
            images: images([]),
            rejoinMarks: { ...runtime, keys: Object.fromEntries([0, 1, 2].map((i) => [`nats-${i}`, rejoinPendingKey("test", cluster.node(i).hostname)])) },
        }));
        guardHost = await ProviderHost.start(guard.serializedProvider);
    });

    after(async () => {
        await nc?.close().catch(() => undefined);
        await host?.close();
        await guardHost?.close();
        await cluster?.destroy();
        await minio?.stop();
    });

    it("create: returns once the node serves JetStream, naming the streams it holds; keys are secret; a new node leaves no mark", async () => {
        assert.deepStrictEqual(["keyPem", "accessKeyId", "secretAccessKey"].filter((k) => !captured.secretInputs.includes(k)), []);
        assert.ok(guard.secretInputs.includes("rejoinMarks"), "the guard's marks carry the deploy's key");
        state = await host.checkAndCreate(captured.inputs);
        assert.deepStrictEqual(state.outs.streams, [`KV_${BUCKET}`]);
        assert.strictEqual(await mark(), undefined);
    });

    it("diff: a new instance id is a wait, never a replacement; the same inputs are no change", async () => {
        assert.strictEqual((await host.diff(state.id, state.outs, captured.inputs)).changes, false);
        const diff = await host.diff(state.id, state.outs, { ...captured.inputs, instanceId: "1002" });
        assert.deepStrictEqual([diff.changes, diff.diffs, diff.replaces], [true, ["instanceId"], []]);
    });

    it("a node rebuilt with an empty store under its name: the update returns only once its replica is current again", async () => {
        await cluster.stop(REBUILT, "SIGKILL");
        fs.rmSync(cluster.layout(REBUILT).storeDir, { recursive: true, force: true });
        // If it led the stream, the first write waits out the election.
        await putWhenAcknowledged(kv, "while-away.0", "value-0", "a write with the node away", 20_000, 200);
        for (let i = 1; i < 50; i++) await kv.put(`while-away.${i}`, `value-${i}`);
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
        assert.strictEqual(await mark(), undefined, "the mark is gone once the node is current");
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

    it("a node that does not come back: the update fails at its own deadline, naming the node and the next step, and leaves its mark", async () => {
        await cluster.stop(REBUILT, "SIGKILL");
        const started = Date.now();
        await assert.rejects(host.update(state.id, state.outs, { ...state.outs, instanceId: "1004", timeoutSeconds: 5 }),
            /NATS node meshtest-1 \(tls:\/\/127\.0\.0\.1:\d+\) was not current within timeoutSeconds=5: not serving JetStream: .*Do not replace another NATS node until it is; run pulumi up again to wait again/);
        assert.ok(Date.now() - started < 20_000, "the deadline holds");
        assert.deepStrictEqual([(await mark())?.node, (await mark())?.instanceId], ["meshtest-1", "1004"]);
    });

    it("new keys or a new deadline on the instance it last confirmed: kept without a wait, even with the node down", async () => {
        const started = Date.now();
        const updated = await host.update(state.id, state.outs, { ...state.outs, timeoutSeconds: 30, certPem: cluster.client.certPem });
        assert.deepStrictEqual([updated.outs.timeoutSeconds, updated.outs.streams], [30, [`KV_${BUCKET}`]]);
        assert.ok(Date.now() - started < 2000, "no wait");
        assert.strictEqual((await mark())?.instanceId, "1004", "the failed rejoin's mark stays");
    });

    it("guard: while nats-1's mark is there, moving another node's image is refused, naming nats-1 and what to run", async () => {
        await assert.rejects(guardUpdate([2]),
            /this up would replace nats-2 for its new image, but nats-1 \(meshtest-1, replaced by instance 1004 at [0-9T:.-]+Z\) has not been seen current since: its rejoin wait failed or never ended\. Run pulumi up with the images as they were until nats-1-rejoin passes, then move the next node/);
    });

    it("guard: moving nats-1 itself again is let through (it is empty already), and so is an up that moves nothing", async () => {
        assert.deepStrictEqual((await guardUpdate([1])).outs, { images: images([1]) });
        assert.deepStrictEqual((await guardUpdate([])).outs, { images: images([]) });
    });

    it("the node back: the next up's wait (still on the instance id it never confirmed) passes and clears the mark; the guard lets the next node go", async () => {
        cluster.start(REBUILT);
        const updated = await host.update(state.id, state.outs, { ...state.outs, instanceId: "1004" });
        state = { id: state.id, outs: updated.outs };
        assert.strictEqual(await mark(), undefined);
        assert.deepStrictEqual((await guardUpdate([2])).outs, { images: images([2]) });
    });

    it("guard: a mark it cannot read refuses (fails closed), naming the object", async () => {
        await minio.putObject(RUNTIME_BUCKET, rejoinPendingKey("test", cluster.node(0).hostname), "{}");
        const wrongKey = { ...guard.inputs, rejoinMarks: { ...guard.inputs.rejoinMarks, secretAccessKey: "not-the-secret" } };
        await assert.rejects(guardUpdate([2], wrongKey), /the rollout guard could not read nats-0's rejoin mark s3:\/\/meshstack-test-runtime\/rejoin\/test\/meshtest-0\.json at http:\/\/[^ ]+: HTTP 403 SignatureDoesNotMatch; no image moves until it can/);
    });

    it("delete (the node removed from the program) removes its mark", async () => {
        await minio.putObject(RUNTIME_BUCKET, markKey(), JSON.stringify({ node: "meshtest-1", instanceId: "1005", since: new Date().toISOString() }));
        await host.delete(state.id, state.outs);
        assert.strictEqual(await mark(), undefined);
    });
});
