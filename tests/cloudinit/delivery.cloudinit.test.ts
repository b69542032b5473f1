import * as assert from "assert";
import { bootstrapObjectKey, chooseDelivery, deliveredUserData, DeliveryChoice } from "../../cloudinit/delivery";
import { LINODE_METADATA_SAFE_LIMIT_BYTES } from "../../lib/limits";
import { BootstrapObject } from "../../providers/bootstrapObject";
import { PresignedUrl } from "../../providers/presignedUrl";
import { presignObjectUrl } from "../../providers/s3";
import { captureDynamicResource, ProviderHost } from "../harness/dynamicProviders";
import { cloudConfigOfBytes, cloudInitSchema, processUserData, ProcessedUserData } from "../support/cloudInit";
import { MinioServer } from "../support/minio";
import { sha256Hex } from "../../lib/digest";

const LIMIT = LINODE_METADATA_SAFE_LIMIT_BYTES;
const BUCKET = "bootstrap-cloudinit";

function choose(text: string, gzipAccepted: boolean): DeliveryChoice {
    const result = chooseDelivery(text, { limitBytes: LIMIT, gzipAccepted });
    if (!result.ok) assert.fail(result.error);
    return result.value;
}

/** The bytes the node receives from Linode Metadata (its API takes base64). */
function delivered(text: string, choice: DeliveryChoice, url: string): Buffer {
    const result = deliveredUserData(text, choice, url);
    if (!result.ok) assert.fail(result.error);
    return Buffer.from(result.value, "base64");
}

/** cloud-init ended with exactly the original cloud-config as its one part. */
function assertYieldsOriginal(processed: ProcessedUserData, original: string): void {
    if (!processed.ok) assert.fail(`cloud-init failed: ${processed.error}`);
    assert.deepStrictEqual(processed.parts.map((p) => p.contentType), ["text/cloud-config"]);
    assert.ok(processed.parts[0].payload.equals(Buffer.from(original, "utf8")), "cloud-init's cloud-config differs from the original");
}

/** cloud-init refused the user-data; its error and how many retries it slept through. */
function refusal(processed: ProcessedUserData): { error: string; retrySleeps: number } {
    if (processed.ok) assert.fail("cloud-init accepted user-data it should have refused");
    return processed;
}

describe("bootstrap delivery through cloud-init's own user-data processing (Debian cloud-init 22.4)", function () {
    this.timeout(120_000);
    let minio: MinioServer;
    let objects: ProviderHost;
    let urls: ProviderHost;
    const original = cloudConfigOfBytes(40_000, "incompressible");
    let objectUrl: string;

    before(async () => {
        minio = await MinioServer.start();
        await minio.createBucket(BUCKET);
        const common = { endpoint: minio.endpoint, region: minio.region, bucket: BUCKET, ...minio.credentials };
        const key = bootstrapObjectKey({ prefix: "bootstrap/", stack: "test", node: "big-node", generation: "abc123", contentSha256: sha256Hex(original) });
        const objectResource = await captureDynamicResource(() => new BootstrapObject("big-node-bootstrap-object", { ...common, key, content: original, store: true }));
        const urlResource = await captureDynamicResource(() => new PresignedUrl("big-node-bootstrap-url", { ...common, key, method: "GET", expiresInSeconds: 3600 }));
        objects = await ProviderHost.start(objectResource.serializedProvider);
        urls = await ProviderHost.start(urlResource.serializedProvider);
        await objects.checkAndCreate(objectResource.inputs);
        objectUrl = (await urls.checkAndCreate(urlResource.inputs)).outs.url;
    });

    after(async () => {
        await objects?.close();
        await urls?.close();
        await minio?.stop();
    });

    it("inline: yields the original cloud-config", async () => {
        const text = cloudConfigOfBytes(LIMIT, "incompressible");
        const choice = choose(text, false);
        assert.strictEqual(choice.method, "inline");
        assertYieldsOriginal(await processUserData(delivered(text, choice, objectUrl)), text);
    });

    it("gzip: cloud-init decompresses the delivered bytes and yields the original cloud-config", async () => {
        const text = cloudConfigOfBytes(LIMIT * 3, "compressible");
        const choice = choose(text, true);
        assert.strictEqual(choice.method, "gzip");
        const bytes = delivered(text, choice, objectUrl);
        assert.deepStrictEqual([...bytes.subarray(0, 2)], [0x1f, 0x8b]);
        assertYieldsOriginal(await processUserData(bytes), text);
    });

    it("object: cloud-init fetches the presigned URL from MinIO and yields the original cloud-config", async () => {
        const choice = choose(original, true);
        assert.strictEqual(choice.method, "object");
        const pointer = delivered(original, choice, objectUrl);
        assert.ok(pointer.length < 1024, `pointer is ${pointer.length} bytes`);
        const processed = await processUserData(pointer);
        assertYieldsOriginal(processed, original);
        assert.strictEqual(processed.retrySleeps, 0, "the first fetch should succeed");
    });

    it("the cloud-config cloud-init resolves the pointer to passes `cloud-init schema`", async () => {
        const processed = await processUserData(delivered(original, choose(original, false), objectUrl));
        if (!processed.ok) assert.fail(processed.error);
        const schema = await cloudInitSchema(processed.parts[0].payload.toString("utf8"));
        assert.ok(schema.valid, schema.output);
        assert.match(schema.output, /Valid cloud-config/);
    });

    it("`cloud-init schema` 22.4 checks #cloud-config files only: it refuses a bare #include file before reading it, so the pointer is proven through the processor", async () => {
        const schema = await cloudInitSchema(delivered(original, choose(original, false), objectUrl).toString("utf8"));
        assert.strictEqual(schema.valid, false);
        assert.match(schema.output, /needs to begin with "#cloud-config"/);
    });

    it("object: an expired URL fails in cloud-init (every retry refused)", async () => {
        const key = new URL(objectUrl).pathname.split("/").slice(2).map(decodeURIComponent).join("/");
        const signedTwoHoursAgo = new Date(Math.floor(Date.now() / 1000) * 1000 - 2 * 3600 * 1000);
        const expired = await presignObjectUrl(minio.location(BUCKET, key), minio.credentials, "GET", 3600, signedTwoHoursAgo);
        assert.match(await (await fetch(expired)).text(), /expired/i, "MinIO must refuse it for its age, not its signature");
        const { error, retrySleeps } = refusal(await processUserData(delivered(original, choose(original, false), expired)));
        assert.match(error, /403 Client Error: Forbidden/);
        assert.strictEqual(retrySleeps, 10);
    });

    it("object: a tampered URL fails in cloud-init", async () => {
        const url = new URL(objectUrl);
        const signature = url.searchParams.get("X-Amz-Signature")!;
        url.searchParams.set("X-Amz-Signature", (signature[0] === "a" ? "b" : "a") + signature.slice(1));
        const { error } = refusal(await processUserData(delivered(original, choose(original, false), url.toString())));
        assert.match(error, /403 Client Error: Forbidden/);
    });
});
