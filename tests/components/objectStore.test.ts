import * as assert from "assert";
import { ObjectStore, ObjectStoreArgs } from "../../components/objectStore";
import { isRpcSecret, MockCloud, startMockCloud, unwrapSecrets } from "../../tooling/mockCloud";
import { isSecret, resolve } from "../support/outputs";

const naming = { project: "meshstack", stack: "test" };
const base: Omit<ObjectStoreArgs, "kind" | "region"> = { naming, bootstrapPrefix: "bootstrap/", bootstrapObjectExpiryDays: 2 };

async function build(args: Partial<ObjectStoreArgs> & Pick<ObjectStoreArgs, "kind" | "region">): Promise<{ cloud: MockCloud; store: ObjectStore }> {
    const cloud = await startMockCloud({ project: "meshstack", stack: "test" });
    const store = new ObjectStore("rendezvous", { ...base, ...args });
    await resolve(store.access.bucket);
    await resolve(store.access.secretAccessKey);
    return { cloud, store };
}

describe("ObjectStore, kind linode", () => {
    let cloud: MockCloud;
    let store: ObjectStore;
    before(async () => ({ cloud, store } = await build({ kind: "linode", region: "us-east" })));

    it("creates a private bucket with a stack-derived name and a random suffix", async () => {
        const bucket = cloud.byName("rendezvous-bucket");
        assert.strictEqual(bucket.inputs.acl, "private");
        assert.match(await resolve(store.access.bucket), /^meshstack-test-[0-9a-f]{6}-rendezvous-[a-z0-9]{6}$/);
    });

    it("expires objects under the bootstrap prefix with a lifecycle rule", () => {
        const rules = cloud.byName("rendezvous-bucket").inputs.lifecycleRules as any[];
        assert.deepStrictEqual(rules, [{ id: "expire-bootstrap-objects", enabled: true, prefix: "bootstrap/", expiration: { days: 2 } }]);
    });

    it("creates a second private bucket for the runtime channel, with no lifecycle rule (desired states live as long as their nodes)", async () => {
        const runtime = cloud.byName("rendezvous-runtime-bucket");
        assert.strictEqual(runtime.inputs.acl, "private");
        assert.strictEqual(runtime.inputs.lifecycleRules, undefined);
        assert.match(await resolve(store.runtime.bucket), /^meshstack-test-[0-9a-f]{6}-rendezvous-rt-[a-z0-9]{6}$/);
        assert.notStrictEqual(await resolve(store.runtime.bucket), await resolve(store.access.bucket));
    });

    it("creates the deploy's access key scoped read_write to these two buckets only", async () => {
        const accesses = cloud.byName("rendezvous-key").inputs.bucketAccesses as any[];
        assert.deepStrictEqual(accesses, [
            { bucketName: await resolve(store.access.bucket), region: "us-east", permissions: "read_write" },
            { bucketName: await resolve(store.runtime.bucket), region: "us-east", permissions: "read_write" },
        ]);
    });

    it("creates the agents' key read_only on the runtime bucket alone: a node can read no bootstrap object and no secret", async () => {
        const accesses = cloud.byName("rendezvous-agent-key").inputs.bucketAccesses as any[];
        assert.deepStrictEqual(accesses, [{ bucketName: await resolve(store.runtime.bucket), region: "us-east", permissions: "read_only" }]);
        assert.ok(await isSecret(store.agentCredentials.accessKeyId));
        assert.ok(await isSecret(store.agentCredentials.secretAccessKey));
        assert.strictEqual(await resolve(store.agentCredentials.accessKeyId), unwrapSecrets(cloud.byName("rendezvous-agent-key").outputs).accessKey);
    });

    it("protects both buckets only when asked (prod)", async () => {
        for (const protect of [false, true]) {
            // Inside a program run: resource options are recorded only there.
            const run = await startMockCloud({ project: "meshstack", stack: "test" });
            await run.runProgram(() => ({ store: new ObjectStore("rendezvous", { ...base, kind: "linode", region: "us-east", protect }).runtime.bucket }));
            assert.deepStrictEqual(["rendezvous-bucket", "rendezvous-runtime-bucket"].map((n) => run.byName(n).options?.protect), [protect, protect], `protect: ${protect}`);
        }
    });

    it("marks the key pair secret", async () => {
        assert.ok(await isSecret(store.access.accessKeyId));
        assert.ok(await isSecret(store.access.secretAccessKey));
    });

    it("exposes the S3 endpoint and its signing region", async () => {
        assert.strictEqual(await resolve(store.access.endpoint), "https://us-east-1.linodeobjects.com");
        assert.strictEqual(await resolve(store.access.region), "us-east-1");
    });
});

describe("ObjectStore, kind s3", () => {
    let cloud: MockCloud;
    let store: ObjectStore;
    before(async () => ({ cloud, store } = await build({
        kind: "s3", region: "us-east-1", endpoint: "https://minio.example.com:9000/",
        s3Credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI" },
        s3AgentCredentials: { accessKeyId: "AKIDAGENT", secretAccessKey: "agentSecretExample" },
    })));

    it("uses an explicit AWS provider with a custom endpoint, path-style addressing and no account lookups", () => {
        const provider = cloud.ofType("pulumi:providers:aws")[0];
        assert.ok(provider, "no explicit aws provider");
        assert.deepStrictEqual(provider.inputs.endpoints, JSON.stringify([{ s3: "https://minio.example.com:9000/" }]));
        for (const flag of ["s3UsePathStyle", "skipCredentialsValidation", "skipRequestingAccountId", "skipMetadataApiCheck", "skipRegionValidation"]) {
            assert.strictEqual(provider.inputs[flag], "true", flag);
        }
        assert.deepStrictEqual(cloud.calls, []);
    });

    it("keeps the provider's credentials secret", () => {
        const provider = cloud.ofType("pulumi:providers:aws")[0];
        assert.ok(isRpcSecret(provider.inputs.secretKey));
    });

    it("creates the bucket and its lifecycle rule through that provider", () => {
        const bucket = cloud.byName("rendezvous-bucket");
        assert.strictEqual(bucket.type, "aws:s3/bucket:Bucket");
        const lifecycle = cloud.byName("rendezvous-lifecycle");
        assert.deepStrictEqual((lifecycle.inputs.rules as any[])[0].filter, { prefix: "bootstrap/" });
        assert.deepStrictEqual((lifecycle.inputs.rules as any[])[0].expiration, { days: 2 });
    });

    it("creates the runtime bucket through the same provider and hands the agents the read-only pair it was given, as secrets", async () => {
        assert.strictEqual(cloud.byName("rendezvous-runtime-bucket").type, "aws:s3/bucket:Bucket");
        assert.strictEqual(await resolve(store.agentCredentials.accessKeyId), "AKIDAGENT");
        assert.ok(await isSecret(store.agentCredentials.secretAccessKey));
    });

    it("refuses kind s3 without the agents' key pair, naming the environment variables", async () => {
        await assert.rejects(build({ kind: "s3", region: "us-east-1", endpoint: "https://minio.example.com:9000", s3Credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI" } }),
            /s3AgentCredentials .*MESHSTACK_AGENT_ACCESS_KEY_ID\/MESHSTACK_AGENT_SECRET_ACCESS_KEY/);
    });

    it("exposes the endpoint without a trailing slash and the configured signing region", async () => {
        assert.strictEqual(await resolve(store.access.endpoint), "https://minio.example.com:9000");
        assert.strictEqual(await resolve(store.access.region), "us-east-1");
        assert.ok(await isSecret(store.access.secretAccessKey));
    });
});
