/**
 * The scale-down (providers/natsScaleDown.ts) through its serialized
 * provider on five real nats-server processes on loopback, scaled 5 -> 3 as
 * an `up` that lowers natsNodeCount runs it: its update() with the last
 * up's members and this one's. Then what the engine does next is done by
 * hand: the two leaving servers go (their instances deleted), the three that
 * stay are routed to each other alone and reloaded (their agents applying the
 * new desired states). Then one more server is lost, which a 3-node cluster
 * promises to survive (issue 18).
 *
 * R3 KV buckets are placed so that every pair of the five servers shares one
 * (server tags, each bucket pinned to three servers at creation, then let
 * free): three of them have two of their three replicas on the leaving
 * servers, the buckets that stopped taking writes when nothing moved them.
 */
import * as assert from "assert";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { NatsScaleDown, NatsScaleDownInputs } from "../../providers/natsScaleDown";
import { UNKNOWN } from "../../providers/unknowns";
import { captureDynamicResource, CapturedDynamicResource, ProviderHost } from "../harness/dynamicProviders";
import { LoopbackNatsCluster } from "../support/natsCluster";
import { waitFor } from "../support/ports";

type NatsConnection = Awaited<ReturnType<typeof connect>>;
/** Every pair of five servers is in one of these triples; 3 and 4 leave. */
const TRIPLES = [[0, 1, 2], [0, 3, 4], [1, 3, 4], [2, 3, 4]];
const STAYING = [0, 1, 2];
const LEAVING = [3, 4];
const bucketOf = (triple: number[]) => `pair${triple.join("")}`;
const tagOf = (triple: number[]) => `t${triple.join("")}`;
/** An R1 stream on a leaving server: refused until accepted. */
const LOCAL = "LOCAL";
/** A stream wider than the cluster that stays: refused, never accepted. */
const WIDE = "WIDE";
const ACCEPT = "meshstack:natsAcceptStreamLoss";

describe("NatsScaleDown: 5 -> 3 on real nats-server (serialized provider)", function () {
    this.timeout(180_000);
    let cluster: LoopbackNatsCluster;
    let nc: NatsConnection;
    let jsm: JetStreamManager;
    let captured: CapturedDynamicResource;
    const hosts: ProviderHost[] = [];

    const hostname = (i: number) => cluster.node(i).hostname;
    const instanceOf = (i: number) => `4000000${i}`;
    const inputsFor = (indexes: number[]): NatsScaleDownInputs => ({
        ...(captured.inputs as NatsScaleDownInputs),
        members: indexes.map((i) => ({ name: `nats-${i}`, node: hostname(i) })),
        instanceIds: indexes.map(instanceOf),
        servers: cluster.clientUrls(indexes),
    });
    const hostWith = async (config: Record<string, string> = {}) => {
        const host = await ProviderHost.start(captured.serializedProvider, {}, config);
        hosts.push(host);
        return host;
    };
    const peersOf = async (stream: string) => {
        const info = await jsm.streams.info(stream);
        return [info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((r) => r.name)].sort();
    };
    const metaClusterSize = async (index: number) => ((await (await cluster.monitor(index, "/jsz")).json()) as { meta_cluster?: { cluster_size?: number } }).meta_cluster?.cluster_size;

    before(async () => {
        cluster = await LoopbackNatsCluster.create(5);
        for (const i of cluster.memberIndexes) cluster.tag(i, [`n${i}`, ...TRIPLES.filter((t) => t.includes(i)).map(tagOf)]);
        await cluster.startAll();
        nc = await connect({
            servers: cluster.clientUrls(),
            tls: { ca: cluster.clientCa.certPem, cert: cluster.client.certPem, key: cluster.client.keyPem, servername: cluster.serviceName },
            timeout: 3000,
        });
        jsm = await jetstreamManager(nc, { timeout: 10_000 });
        const kvm = new Kvm(jetstream(nc, { timeout: 10_000 }));
        for (const triple of TRIPLES) {
            const kv = await kvm.create(bucketOf(triple), { replicas: 3, placement: { cluster: cluster.clusterName, tags: [tagOf(triple)] } });
            // A new bucket's stream takes writes once its leader is elected and its interest has reached
            // the server this client is on; until then a put meets "no responders" (CI met it under load).
            await waitFor(`${bucketOf(triple)} to take its first write`, async () => (await kv.put("before", "kept")) > 0, 20_000, 200);
            assert.deepStrictEqual(await peersOf(`KV_${bucketOf(triple)}`), triple.map(hostname).sort(), `${bucketOf(triple)} is on servers ${triple}`);
            // Let it free: a move may place its replicas anywhere. A placement removed moves nothing now.
            const { placement: _pinned, ...config } = (await jsm.streams.info(`KV_${bucketOf(triple)}`)).config;
            const reply = JSON.parse((await nc.request(`$JS.API.STREAM.UPDATE.KV_${bucketOf(triple)}`, JSON.stringify(config), { timeout: 5000 })).string());
            assert.ok(!reply.error, JSON.stringify(reply.error));
        }
        await jsm.streams.add({ name: LOCAL, subjects: ["local.>"], num_replicas: 1, placement: { cluster: cluster.clusterName, tags: ["n4"] } });
        await jsm.streams.add({ name: WIDE, subjects: ["wide.>"], num_replicas: 5 });
        captured = await captureDynamicResource(() => new NatsScaleDown("nats-scale-down", {
            members: cluster.memberIndexes.map((i) => ({ name: `nats-${i}`, node: hostname(i) })), instanceIds: cluster.memberIndexes.map(instanceOf), servers: cluster.clientUrls(),
            tlsServerName: cluster.serviceName, caPem: cluster.clientCa.certPem, certPem: cluster.client.certPem, keyPem: cluster.client.keyPem,
            systemPassword: cluster.systemPassword, timeoutSeconds: 60,
        }));
    });

    after(async () => {
        await nc?.close().catch(() => undefined);
        for (const host of hosts) await host.close();
        await cluster?.destroy();
    });

    it("its key and the system password are secret; fewer members is an update, never a replacement", async () => {
        assert.deepStrictEqual(captured.secretInputs.sort(), ["keyPem", "systemPassword"]);
        const host = await hostWith();
        const diff = await host.diff("id", inputsFor(cluster.memberIndexes), inputsFor(STAYING));
        assert.deepStrictEqual([diff.changes, diff.replaces], [true, []]);
        // A preview (check) says who leaves, and asks no server.
        await host.checkedInputs(inputsFor(cluster.memberIndexes), inputsFor(STAYING));
        assert.ok(host.logs.some((line) => line.startsWith(`[nats-scale-down] nats-4 (${hostname(4)}), then nats-3 (${hostname(3)}) leave the cluster in this up`)), host.logs.join("\n"));
    });

    it("refuses in the preview nodes leaving in the same up that replaces another (its new instance id not known yet), naming both", async () => {
        const host = await hostWith();
        const replacingOne = { ...inputsFor(STAYING), instanceIds: [instanceOf(0), UNKNOWN, instanceOf(2)] };
        await assert.rejects(host.checkedInputs(inputsFor(cluster.memberIndexes), replacingOne), (err: Error) => {
            assert.match(err.message, new RegExp(`^instanceIds: refused: this up removes NATS nodes nats-4 \\(${hostname(4)}\\), nats-3 \\(${hostname(3)}\\) .* and replaces nats-1 \\(${hostname(1)}\\);`));
            assert.match(err.message, /do one per up/);
            return true;
        });
    });

    it("refuses, before anything moves, a stream wider than the servers that stay and an R1 stream on a leaving server, naming both", async () => {
        const host = await hostWith();
        await assert.rejects(host.update("id", inputsFor(cluster.memberIndexes), inputsFor(STAYING)), (err: Error) => {
            assert.match(err.message, new RegExp(`^refused: this up removes NATS nodes nats-4 \\(${hostname(4)}\\), nats-3 \\(${hostname(3)}\\) \\(meshstack:natsNodeCount lowered to 3\\)`));
            assert.match(err.message, new RegExp(`${WIDE}: 5 replicas, and 3 servers would remain; ${LOCAL}: the only replica of this stream is on ${hostname(4)}\\. Nothing has been moved or deleted`));
            return true;
        });
        assert.deepStrictEqual(await metaClusterSize(0), 5, "the meta group is as it was");
        // The wide stream is never accepted: the operator narrows it.
        await jsm.streams.update(WIDE, { num_replicas: 3 });
    });

    it("moves every replica off nats-4, then nats-3, waits until each is current, and removes them from the meta group: it reports 3 peers", async () => {
        const host = await hostWith({ [ACCEPT]: JSON.stringify([LOCAL]) });
        const started = Date.now();
        await host.update("id", inputsFor(cluster.memberIndexes), inputsFor(STAYING));
        const took = Date.now() - started;
        const progress = host.logs.filter((line) => line.startsWith("[nats-scale-down]"));
        const order = progress.filter((line) => / removed from the JetStream meta group$/.test(line));
        assert.deepStrictEqual(order, [4, 3].map((i) => `[nats-scale-down] nats-${i} (${hostname(i)}): removed from the JetStream meta group`), progress.join("\n"));
        assert.ok(progress.some((line) => line.includes(`nats-3 (${hostname(3)}): every replica it held is current on the servers that stay`)), progress.join("\n"));
        // Never through a leaving server: once removed, it disables its JetStream and answers "temporarily unavailable".
        const staying = `(${STAYING.map(hostname).join("|")})`;
        assert.ok(progress.some((line) => new RegExp(`^\\[nats-scale-down\\] asking the cluster through ${staying} and, as the system account, ${staying}$`).test(line)), progress.join("\n"));
        assert.ok(took < 60_000, `scale-down took ${took} ms`);
        await waitFor("the meta group to report 3 peers", async () => (await metaClusterSize(0)) === 3, 10_000);
        for (const stream of [...TRIPLES.map((t) => `KV_${bucketOf(t)}`), WIDE]) {
            const peers = await peersOf(stream);
            assert.deepStrictEqual(peers, STAYING.map(hostname).sort(), `${stream} is on the servers that stay`);
        }
    });

    it("after the leaving servers go and the rest are routed to each other, one more server lost: every bucket takes writes, a new R3 bucket is made, the meta group still has 3 peers", async () => {
        for (const i of LEAVING) await cluster.stop(i, "SIGKILL");
        for (const i of STAYING) cluster.routeTo(i, STAYING);
        await cluster.waitFormed(STAYING);
        await cluster.stop(0, "SIGKILL");
        const survivors = [1, 2];
        const through = await connect({
            servers: cluster.clientUrls(survivors),
            tls: { ca: cluster.clientCa.certPem, cert: cluster.client.certPem, key: cluster.client.keyPem, servername: cluster.serviceName },
            timeout: 3000,
        });
        try {
            const kvm = new Kvm(jetstream(through, { timeout: 5000 }));
            for (const triple of TRIPLES) {
                const kv = await kvm.open(bucketOf(triple));
                await waitFor(`${bucketOf(triple)} to take a write with one of three servers lost`, async () => (await kv.put("after", "written")) > 0, 20_000, 250);
                assert.strictEqual((await kv.get("before"))?.string(), "kept", `${bucketOf(triple)} kept what it held`);
            }
            await waitFor("a new R3 bucket to be made", async () => !!(await kvm.create("made-after", { replicas: 3 })), 20_000, 250);
            for (const i of survivors) assert.strictEqual(await metaClusterSize(i), 3, `server ${i} counts 3 peers`);
        } finally {
            await through.close().catch(() => undefined);
        }
    });
});
