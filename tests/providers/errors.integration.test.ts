import * as assert from "assert";
import * as net from "net";
import { BootstrapObject, BootstrapObjectCleanup } from "../../providers/bootstrapObject";
import { JetStreamKv } from "../../providers/jetstreamKv";
import { DEFAULT_POLL_POLICY, WgPubkeyPoll } from "../../providers/wgPubkeyPoll";
import { captureDynamicResource, ProviderHost } from "../harness/dynamicProviders";
import { pemBlock } from "../../lib/config";

/** A loopback port nothing listens on: connections to it are refused at once. */
async function refusedPort(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    return port;
}

async function failureOf(host: ProviderHost, call: Promise<unknown>): Promise<string> {
    try {
        await call;
    } catch (err) {
        return (err as Error).message;
    } finally {
        await host.close();
    }
    assert.fail("expected the provider call to fail");
}

describe("provider errors name what failed (serialized providers, endpoint refusing connections)", function () {
    this.timeout(60_000);
    let endpoint: string;
    let port: number;
    const access = () => ({ endpoint, region: "us-east-1", bucket: "rendezvous", accessKeyId: "AKIAEXAMPLE", secretAccessKey: "secret-example" });

    before(async () => {
        port = await refusedPort();
        endpoint = `http://127.0.0.1:${port}`;
    });

    it("an upload names the operation, endpoint, bucket, key and the refused address", async () => {
        const resource = await captureDynamicResource(() => new BootstrapObject("n-bootstrap-object", { ...access(), key: "bootstrap/dev/n/abc.cloud-config", content: "#cloud-config\n", store: true }));
        const host = await ProviderHost.start(resource.serializedProvider);
        const message = await failureOf(host, host.checkAndCreate(resource.inputs));
        assert.match(message, new RegExp(`PUT s3://rendezvous/bootstrap/dev/n/abc\\.cloud-config at http://127\\.0\\.0\\.1:${port} failed: .*ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
        assert.doesNotMatch(message, /^fetch failed$/);
    });

    it("a cleanup names the object and the refused address", async () => {
        const resource = await captureDynamicResource(() => new BootstrapObjectCleanup("n-bootstrap-cleanup", { ...access(), key: "bootstrap/dev/n/abc.cloud-config", stored: true, instanceId: "1", publishedBucket: "runtime", publishedKey: "published/dev/n/g.json", deadlineSeconds: 0 }));
        const host = await ProviderHost.start(resource.serializedProvider);
        const message = await failureOf(host, host.checkAndCreate(resource.inputs));
        assert.match(message, /deleting bootstrap object s3:\/\/rendezvous\/bootstrap\/dev\/n\/abc\.cloud-config failed: HEAD s3:\/\/rendezvous\/.* at http:\/\/127\.0\.0\.1:\d+ failed: .*ECONNREFUSED/);
    });

    it("the public-key poll reports the refused address as its last response", async () => {
        const resource = await captureDynamicResource(() => new WgPubkeyPoll("hub-pubkey", {
            ...access(), key: "published/dev/hub/n.json", node: "hub", instanceId: "1", expectedRequests: {}, nodeLabel: "hub", nodeAddress: "203.0.113.9", bootstrapLogPath: "/var/log/x.log",
            policy: { ...DEFAULT_POLL_POLICY, initialDelayMs: 50, maxIntervalMs: 100, timeoutMs: 1_000 },
        }));
        const host = await ProviderHost.start(resource.serializedProvider);
        const message = await failureOf(host, host.checkAndCreate(resource.inputs));
        assert.match(message, new RegExp(`key published/dev/hub/n\\.json \\(http://127\\.0\\.0\\.1:${port}\\).*last response network error \\(.*ECONNREFUSED 127\\.0\\.0\\.1:${port}\\)`));
    });

    it("the KV provider names the operation, the bucket and the servers it could not reach", async () => {
        const pem = pemBlock("CERTIFICATE", "stand-in");
        const resource = await captureDynamicResource(() => new JetStreamKv("kv", {
            servers: [`tls://127.0.0.1:${port}`], caPem: pem, certPem: pem, keyPem: pemBlock("PRIVATE KEY", "stand-in"), bucket: "control", replicas: 1, timeoutSeconds: 5,
        }));
        const host = await ProviderHost.start(resource.serializedProvider);
        const message = await failureOf(host, host.checkAndCreate(resource.inputs));
        assert.match(message, new RegExp(`create of KV bucket control failed: NATS at tls://127\\.0\\.0\\.1:${port} `));
        assert.match(message, /CONNECTION_REFUSED|ECONNREFUSED|refused/i);
    });
});
