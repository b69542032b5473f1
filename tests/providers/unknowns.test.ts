import * as assert from "assert";
import { pemBlock } from "../../lib/config";
import { BootstrapObject } from "../../providers/bootstrapObject";
import { JetStreamKv } from "../../providers/jetstreamKv";
import { PresignedUrl } from "../../providers/presignedUrl";
import { changedFields, containsUnknown, knownFailures, UNKNOWN } from "../../providers/unknowns";
import { DEFAULT_POLL_POLICY, WgPubkeyPoll } from "../../providers/wgPubkeyPoll";
import { captureDynamicResource, CapturedDynamicResource, OFFLINE_HOST_ENV, ProviderHost } from "../harness/dynamicProviders";

const ACCESS = { endpoint: "https://us-east-1.linodeobjects.com", region: "us-east-1", bucket: "rendezvous", accessKeyId: "AKIAEXAMPLE", secretAccessKey: "secret-example" };

describe("unknown inputs during a preview", () => {
    describe("the rules (pure)", () => {
        it("finds the sentinel at any depth", () => {
            assert.ok(containsUnknown({ a: [1, { b: UNKNOWN }] }));
            assert.ok(!containsUnknown({ a: [1, { b: "known" }] }));
        });

        it("drops failures about unknown values, keeps those about known ones", () => {
            const failures = [{ property: "bucket", reason: "x" }, { property: "policy.timeoutMs", reason: "y" }, { property: "key", reason: "z" }];
            assert.deepStrictEqual(knownFailures({ bucket: UNKNOWN, policy: UNKNOWN, key: "" }, failures).map((f) => f.property), ["key"]);
        });

        it("counts an unknown field as changed even when the old value might match", () => {
            assert.deepStrictEqual(changedFields({ a: "x", b: "y", c: 1 }, { a: "x", b: UNKNOWN, c: 2 }, ["a", "b", "c"] as const), ["b", "c"]);
        });
    });

    describe("every provider in its serialized form (offline host)", function () {
        this.timeout(60_000);
        const hosts: ProviderHost[] = [];
        async function hostFor(resource: CapturedDynamicResource): Promise<ProviderHost> {
            const host = await ProviderHost.start(resource.serializedProvider, OFFLINE_HOST_ENV);
            hosts.push(host);
            return host;
        }
        after(async () => {
            await Promise.all(hosts.map((h) => h.close()));
            assert.deepStrictEqual(hosts.flatMap((h) => h.networkAttempts), []);
        });

        it("PresignedUrl: check() accepts unknowns, still refuses a bad known value; diff() reports an unknown bucket as a change", async () => {
            const resource = await captureDynamicResource(() => new PresignedUrl("u", { ...ACCESS, key: "k", method: "GET", expiresInSeconds: 3600 }));
            const host = await hostFor(resource);
            const unknowns = { ...resource.inputs, endpoint: UNKNOWN, bucket: UNKNOWN, key: UNKNOWN, accessKeyId: UNKNOWN, secretAccessKey: UNKNOWN };
            assert.deepStrictEqual((await host.check({}, unknowns)).failures, []);
            const bad = await host.check({}, { ...unknowns, expiresInSeconds: 999_999_999 });
            assert.deepStrictEqual(bad.failures!.map((f) => f.property), ["expiresInSeconds"]);
            const { id, outs } = await host.checkAndCreate(resource.inputs);
            const diff = await host.diff(id, outs, { ...resource.inputs, bucket: UNKNOWN });
            assert.strictEqual(diff.changes, true);
            assert.deepStrictEqual(diff.diffs, ["bucket"]);
            assert.strictEqual((await host.diff(id, outs, resource.inputs)).changes, false);
        });

        it("BootstrapObject: unknown content may be a new object: replaced, deleting first", async () => {
            const resource = await captureDynamicResource(() => new BootstrapObject("o", { ...ACCESS, key: "bootstrap/k", content: "#cloud-config\n", store: false }));
            const host = await hostFor(resource);
            assert.deepStrictEqual((await host.check({}, { ...resource.inputs, content: UNKNOWN, store: UNKNOWN, key: UNKNOWN })).failures, []);
            const { id, outs } = await host.checkAndCreate(resource.inputs);
            const diff = await host.diff(id, outs, { ...resource.inputs, content: UNKNOWN });
            assert.deepStrictEqual(diff.replaces, ["content"]);
            assert.strictEqual(diff.deleteBeforeReplace, true);
        });

        it("WgPubkeyPoll: an unknown instance means a new key: poll again", async () => {
            const resource = await captureDynamicResource(() => new WgPubkeyPoll("p", {
                ...ACCESS, key: "published/dev/wg-cache/g1.json", node: "wg-cache", instanceId: "1", expectedRequests: {}, nodeLabel: "hub", nodeAddress: "203.0.113.9", bootstrapLogPath: "/var/log/x.log", policy: DEFAULT_POLL_POLICY,
            }));
            const host = await hostFor(resource);
            assert.deepStrictEqual((await host.check({}, { ...resource.inputs, instanceId: UNKNOWN, nodeAddress: UNKNOWN, policy: UNKNOWN, key: UNKNOWN })).failures, []);
            const olds = { ...resource.inputs, publicKey: "k", requests: {}, attempts: 1, waitedMs: 1, foundAt: "2026-01-01T00:00:00.000Z" };
            const diff = await host.diff("id", olds, { ...resource.inputs, instanceId: UNKNOWN });
            assert.deepStrictEqual(diff.replaces, ["instanceId"]);
        });

        it("JetStreamKv: unknown servers are an in-place change, never a new bucket", async () => {
            const pem = pemBlock("CERTIFICATE", "x");
            const resource = await captureDynamicResource(() => new JetStreamKv("kv", { servers: ["tls://203.0.113.1:4222"], caPem: pem, certPem: pem, keyPem: pemBlock("PRIVATE KEY", "x"), bucket: "control", replicas: 1 }));
            const host = await hostFor(resource);
            const checked = await host.check({}, { ...resource.inputs, servers: [UNKNOWN, UNKNOWN], caPem: UNKNOWN, certPem: UNKNOWN, keyPem: UNKNOWN });
            assert.deepStrictEqual(checked.failures, []);
            const olds = { ...checked.inputs, servers: ["tls://203.0.113.1:4222"], streamName: "KV_control", peers: ["a"] };
            const diff = await host.diff("KV_control", olds, checked.inputs);
            assert.strictEqual(diff.changes, true);
            assert.deepStrictEqual(diff.replaces, []);
        });
    });
});
