/**
 * The stream guard's check() and diff() through its serialized provider, as
 * the engine calls them, offline: in particular the diff the engine asks for
 * when it replaces the node's instance with deleteBeforeReplace (the
 * guard's inputs fed by that instance unknown), whose answer decides that
 * the guard is deleted, and so asks JetStream, before the instance is.
 */
import * as assert from "assert";
import { acceptedStreams, NatsStreamGuard, NatsStreamGuardInputs } from "../../providers/natsStreamGuard";
import { UNKNOWN } from "../../providers/unknowns";
import { captureDynamicResource, OFFLINE_HOST_ENV, ProviderHost } from "../harness/dynamicProviders";

const INPUTS: NatsStreamGuardInputs = {
    name: "nats-1", node: "meshstack-dev-1", instanceId: "4242",
    servers: ["tls://203.0.113.7:4222", "tls://203.0.113.8:4222", "tls://203.0.113.9:4222"],
    tlsServerName: "nats.meshstack-dev.internal", caPem: "ca", certPem: "cert", keyPem: "key",
};

describe("NatsStreamGuard check and diff (serialized, offline)", function () {
    this.timeout(30_000);
    let host: ProviderHost;

    before(async () => {
        const captured = await captureDynamicResource(() => new NatsStreamGuard("nats-1-stream-guard", INPUTS));
        host = await ProviderHost.start(captured.serializedProvider, OFFLINE_HOST_ENV);
    });

    after(async () => {
        await host?.close();
    });

    it("check reports every problem at once, naming the property, the value and what is allowed", async () => {
        const checked = await host.check({}, { ...INPUTS, name: "nats-x", node: "-x", instanceId: "", servers: ["nats://h:4222"], keyPem: "" });
        assert.deepStrictEqual(checked.failures, [
            { property: "name", reason: 'got "nats-x"; allowed: nats-<index>' },
            { property: "node", reason: 'got "-x"; allowed: the node\'s server name (a hostname)' },
            { property: "instanceId", reason: 'got ""; allowed: the id of the node\'s instance' },
            { property: "servers", reason: 'got ["nats://h:4222"]; allowed: one or more tls://host:port URLs, the nodes\' own' },
            { property: "keyPem", reason: "is required" },
        ]);
        assert.deepStrictEqual((await host.check({}, { ...INPUTS, servers: [] })).failures?.map((f) => f.property), ["servers"]);
        assert.deepStrictEqual((await host.check({}, INPUTS)).failures ?? [], []);
    });

    it("a fresh stack's preview: the instance and the addresses are unknown, check passes", async () => {
        assert.deepStrictEqual((await host.check({}, { ...INPUTS, instanceId: UNKNOWN, servers: UNKNOWN })).failures ?? [], []);
    });

    it("the instance replaced (its id unknown, as the engine asks before a deleteBeforeReplace): replace, itself deleted first", async () => {
        const diff = await host.diff("id", INPUTS, { ...INPUTS, instanceId: UNKNOWN, servers: [INPUTS.servers[0], UNKNOWN, INPUTS.servers[2]] });
        assert.deepStrictEqual([diff.changes, diff.diffs, diff.replaces, diff.deleteBeforeReplace], [true, ["instanceId", "servers"], ["instanceId"], true]);
    });

    it("another node replaced, new certificates, nothing changed: an update in place, or no change", async () => {
        const other = await host.diff("id", INPUTS, { ...INPUTS, servers: [UNKNOWN, INPUTS.servers[1], INPUTS.servers[2]] });
        assert.deepStrictEqual([other.changes, other.replaces], [true, []]);
        const renewed = await host.diff("id", INPUTS, { ...INPUTS, certPem: "cert-2", keyPem: "key-2" });
        assert.deepStrictEqual([renewed.changes, renewed.diffs, renewed.replaces], [true, ["certPem", "keyPem"], []]);
        assert.strictEqual((await host.diff("id", INPUTS, INPUTS)).changes, false);
        assert.deepStrictEqual(host.networkAttempts, []);
    });

    it("reads meshstack:natsAcceptStreamLoss as the stack config holds it, and refuses what the program would", () => {
        assert.deepStrictEqual(acceptedStreams(undefined), []);
        assert.deepStrictEqual(acceptedStreams(""), []);
        assert.deepStrictEqual(acceptedStreams("[]"), []);
        assert.deepStrictEqual(acceptedStreams('["KV_control","*"]'), ["KV_control", "*"]);
        assert.deepStrictEqual(acceptedStreams(["ORDERS"]), ["ORDERS"]);
        assert.throws(() => acceptedStreams('["a.b"]'), /^Error: meshstack:natsAcceptStreamLoss "\[\\"a\.b\\"\]" is not allowed; allowed: a list of JetStream stream names, or "\*"$/);
        assert.throws(() => acceptedStreams('"ORDERS"'), /is not allowed/);
    });
});
