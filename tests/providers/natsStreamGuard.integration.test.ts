/**
 * The stream guard (providers/natsStreamGuard.ts) through its serialized
 * provider against a real 3-node nats-server cluster on loopback: an R1
 * stream on one server and an R3 stream. Its delete() is what the engine
 * runs before the node's instance goes (replaced or removed); the stack
 * config reaches it through configure(), as the engine hands it over.
 */
import * as assert from "assert";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { NatsStreamGuard, NatsStreamGuardInputs } from "../../providers/natsStreamGuard";
import { captureDynamicResource, CapturedDynamicResource, ProviderHost } from "../harness/dynamicProviders";
import { LoopbackNatsCluster } from "../support/natsCluster";

type NatsConnection = Awaited<ReturnType<typeof connect>>;
const R1 = "ORDERS";
const R3 = "EVENTS";
const ACCEPT = "meshstack:natsAcceptStreamLoss";

describe("NatsStreamGuard on a real 3-node cluster (serialized provider)", function () {
    this.timeout(120_000);
    let cluster: LoopbackNatsCluster;
    let nc: NatsConnection;
    let captured: CapturedDynamicResource;
    /** The server the R1 stream was placed on, and one that holds only R3 replicas. */
    let holder: number;
    let other: number;
    const hosts: ProviderHost[] = [];

    const guardOf = (index: number): NatsStreamGuardInputs => ({
        ...(captured.inputs as NatsStreamGuardInputs), name: `nats-${index}`, node: cluster.node(index).hostname,
    });
    /** A host configured with this stack config, as the engine starts the provider for an `up`. */
    const hostWith = async (config: Record<string, string> = {}) => {
        const host = await ProviderHost.start(captured.serializedProvider, {}, config);
        hosts.push(host);
        return host;
    };

    before(async () => {
        cluster = await LoopbackNatsCluster.create();
        await cluster.startAll();
        nc = await connect({
            servers: cluster.clientUrls(),
            tls: { ca: cluster.clientCa.certPem, cert: cluster.client.certPem, key: cluster.client.keyPem, servername: cluster.serviceName },
            timeout: 3000,
        });
        const jsm = await jetstreamManager(nc, { timeout: 10_000 });
        await jsm.streams.add({ name: R1, subjects: ["orders.>"], num_replicas: 1 });
        await jsm.streams.add({ name: R3, subjects: ["events.>"], num_replicas: 3 });
        const leader = (await jsm.streams.info(R1)).cluster?.leader;
        holder = cluster.memberIndexes.find((i) => cluster.node(i).hostname === leader)!;
        assert.ok(holder !== undefined, `the R1 stream has a leader among the members: ${leader}`);
        other = cluster.memberIndexes.find((i) => i !== holder)!;
        captured = await captureDynamicResource(() => new NatsStreamGuard("nats-0-stream-guard", {
            name: "nats-0", node: cluster.node(0).hostname, instanceId: "1001", servers: cluster.clientUrls(), tlsServerName: cluster.serviceName,
            caPem: cluster.clientCa.certPem, certPem: cluster.client.certPem, keyPem: cluster.client.keyPem,
        }));
    });

    after(async () => {
        await nc?.close().catch(() => undefined);
        for (const host of hosts) await host.close();
        await cluster?.destroy();
    });

    it("its key is secret; create asks nothing; a new instance id replaces it, deleted before its replacement", async () => {
        assert.deepStrictEqual(captured.secretInputs, ["keyPem"]);
        const host = await hostWith();
        const created = await host.checkAndCreate(guardOf(holder));
        assert.deepStrictEqual(created.outs, guardOf(holder));
        const diff = await host.diff(created.id, created.outs, { ...guardOf(holder), instanceId: "1002" });
        assert.deepStrictEqual([diff.changes, diff.replaces, diff.deleteBeforeReplace], [true, ["instanceId"], true]);
    });

    it("refuses the deletion of the server holding the R1 stream, naming the stream and the node", async () => {
        const host = await hostWith();
        const node = cluster.node(holder).hostname;
        await assert.rejects(host.delete("id", guardOf(holder)), (err: Error) => {
            assert.match(err.message, new RegExp(`^refused: NATS node nats-${holder} \\(${node}\\) is about to be deleted .*${R1}: the only replica of this stream is on ${node}\\.`));
            assert.match(err.message, new RegExp(`add "${R1}" to meshstack:natsAcceptStreamLoss`));
            assert.ok(!err.message.includes(R3), "the R3 stream survives the node and is not named");
            return true;
        });
    });

    it("lets a server holding only R3 replicas go, and says so", async () => {
        const host = await hostWith();
        await host.delete("id", guardOf(other));
        assert.ok(host.logs.some((line) => line === `[nats-stream-guard] nats-${other} (${cluster.node(other).hostname}): no stream has its only replica on it; it may go`), host.logs.join("\n"));
    });

    it("lets the holder go once the stack accepts the loss of that stream (read from the config of this up)", async () => {
        const host = await hostWith({ [ACCEPT]: JSON.stringify([R1]) });
        await host.delete("id", guardOf(holder));
        assert.ok(host.logs.some((line) => line.includes(`but those accepted in ${ACCEPT} (${R1})`)), host.logs.join("\n"));
        // Accepting another stream accepts nothing here.
        const unrelated = await hostWith({ [ACCEPT]: JSON.stringify(["KV_control"]) });
        await assert.rejects(unrelated.delete("id", guardOf(holder)), new RegExp(`${R1}: the only replica`));
    });

    it("\"*\" lets any node go without asking the cluster", async () => {
        const host = await hostWith({ [ACCEPT]: JSON.stringify(["*"]) });
        await host.delete("id", { ...guardOf(holder), servers: ["tls://127.0.0.1:1"] });
        assert.ok(host.logs.some((line) => line.includes("accepts the loss of every stream; not asking")), host.logs.join("\n"));
    });

    it("a cluster that refuses the deployer refuses the deletion at once, saying it cannot tell and how to get through", async () => {
        const host = await hostWith();
        const started = Date.now();
        await assert.rejects(host.delete("id", { ...guardOf(other), caPem: cluster.routeCa.certPem }), (err: Error) => {
            assert.match(err.message, new RegExp(`^refused: the stream guard of NATS node nats-${other} .* cannot tell which streams deleting it would lose: NATS at .* refused the connection`));
            assert.match(err.message, /add "\*" to meshstack:natsAcceptStreamLoss/);
            return true;
        });
        assert.ok(Date.now() - started < 30_000, "no wait for what no retry fixes");
    });
});
