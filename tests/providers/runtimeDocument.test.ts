import { truncatedPrivateKeyPem } from "../fixtures/privateKeyPem";
import * as assert from "assert";
import { RuntimeDocument, RuntimeDocumentInputs } from "../../providers/runtimeDocument";
import { UNKNOWN } from "../../providers/unknowns";
import { sha256Hex } from "../../lib/digest";
import { captureDynamicResource, CapturedDynamicResource, ProviderHost } from "../harness/dynamicProviders";
import { MinioServer } from "../support/minio";

const BUCKET = "runtime-doc-tests";
const KEY_A = "iIBAl9Nwao81+tKfMcp9c5V0EIUE4txeIAFcCHkGBVM=";
const KEY_B = "3CMqZbbnm3mWqTY1Mp5FsXAEz6MgX6j8mb9Ifv1+hGE=";
const stateWith = (publicKey: string) => JSON.stringify({ version: 1, node: "wg-cache", instanceId: "100", wireguard: { peers: [{ name: "meshstack-dev-0", publicKey, allowedIps: ["10.44.0.10/32"] }] } });

describe("RuntimeDocument provider against MinIO (serialized, in a fresh host process)", function () {
    this.timeout(60_000);
    let minio: MinioServer;
    let captured: CapturedDynamicResource;
    let host: ProviderHost;
    let keyCounter = 0;

    before(async () => {
        minio = await MinioServer.start();
        await minio.createBucket(BUCKET);
        captured = await captureDynamicResource(
            () =>
                new RuntimeDocument("hub-desired", {
                    endpoint: minio.endpoint, region: minio.region, bucket: BUCKET, key: "desired/test/wg-cache.json",
                    accessKeyId: minio.credentials.accessKeyId, secretAccessKey: minio.credentials.secretAccessKey,
                    content: stateWith(KEY_A),
                }),
        );
        host = await ProviderHost.start(captured.serializedProvider);
    });

    after(async () => {
        await host?.close();
        await minio?.stop();
    });

    /** Inputs for a fresh object key, so tests never see each other's objects. */
    const inputsFor = (overrides: Partial<RuntimeDocumentInputs> = {}): RuntimeDocumentInputs => ({
        ...(captured.inputs as RuntimeDocumentInputs),
        key: `desired/test/node-${++keyCounter}.json`,
        ...overrides,
    });
    const stored = async (key: string) => (await minio.getObject(BUCKET, key))?.toString("utf8");

    it("passes the key pair as secret inputs (delete signs with the pair kept in state)", () => {
        assert.deepStrictEqual(captured.secretInputs.sort(), ["accessKeyId", "secretAccessKey"]);
    });

    it("create writes the document and records its digest and size", async () => {
        const inputs = inputsFor();
        const { outs } = await host.checkAndCreate(inputs);
        assert.strictEqual(await stored(inputs.key), inputs.content);
        assert.deepStrictEqual([outs.contentSha256, outs.sizeBytes], [sha256Hex(inputs.content), Buffer.byteLength(inputs.content)]);
    });

    it("reports no change for the same content", async () => {
        const inputs = inputsFor();
        const { id, outs } = await host.checkAndCreate(inputs);
        assert.deepStrictEqual(await host.diff(id, outs, inputs), { changes: false, diffs: [], replaces: [], deleteBeforeReplace: false });
    });

    it("changes content in place: an update, never a delete, and a reader polling meanwhile never sees a 404", async () => {
        const inputs = inputsFor();
        const { id, outs } = await host.checkAndCreate(inputs);
        const changed = { ...inputs, content: stateWith(KEY_B) };
        const diff = await host.diff(id, outs, changed);
        assert.deepStrictEqual([diff.changes, diff.diffs, diff.replaces], [true, ["content"], []]);

        const seen: (string | undefined)[] = [];
        let updating = true;
        const reader = (async () => {
            while (updating) seen.push(await stored(inputs.key));
        })();
        const updated = await host.update(id, outs, changed);
        updating = false;
        await reader;
        assert.ok(seen.length > 0, "the reader made no GET during the update");
        assert.ok(seen.every((doc) => doc === inputs.content || doc === changed.content), `a reader saw ${JSON.stringify(seen.filter((doc) => doc !== inputs.content && doc !== changed.content))}`);
        assert.strictEqual(await stored(inputs.key), changed.content);
        assert.strictEqual(updated.outs.contentSha256, sha256Hex(changed.content));
        for (const field of ["endpoint", "bucket", "key", "contentSha256", "sizeBytes", "writtenAt"]) assert.ok(updated.outs[field] !== undefined, `update output lacks ${field}`);
    });

    it("takes a rotated key pair alone as an update that writes nothing and keeps the new pair for delete", async () => {
        const inputs = inputsFor();
        const { id, outs } = await host.checkAndCreate(inputs);
        const rotated = { ...inputs, accessKeyId: "ROTATEDKEY0000000000", secretAccessKey: "rotated-secret-0000000000000000000000000" };
        const diff = await host.diff(id, outs, rotated);
        assert.deepStrictEqual([diff.changes, diff.replaces], [true, []]);
        const updated = await host.update(id, outs, rotated);
        assert.deepStrictEqual([updated.outs.writtenAt, updated.outs.accessKeyId], [outs.writtenAt, "ROTATEDKEY0000000000"]);
    });

    it("takes unknown content during a preview for a change", async () => {
        const inputs = inputsFor();
        const { id, outs } = await host.checkAndCreate(inputs);
        assert.deepStrictEqual((await host.check({}, { ...inputs, content: UNKNOWN })).failures, []);
        const diff = await host.diff(id, outs, { ...inputs, content: UNKNOWN });
        assert.deepStrictEqual([diff.changes, diff.diffs, diff.replaces], [true, ["content"], []]);
    });

    it("replaces for another object key", async () => {
        const inputs = inputsFor();
        const { id, outs } = await host.checkAndCreate(inputs);
        const diff = await host.diff(id, outs, { ...inputs, key: "desired/test/elsewhere.json" });
        assert.deepStrictEqual(diff.replaces, ["key"]);
    });

    it("delete removes the document", async () => {
        const inputs = inputsFor();
        const { id, outs } = await host.checkAndCreate(inputs);
        await host.delete(id, outs);
        assert.strictEqual(await stored(inputs.key), undefined);
    });

    it("refuses private key material at check time and writes nothing", async () => {
        const inputs = inputsFor({ content: JSON.stringify({ version: 1, certificates: { "route.key": truncatedPrivateKeyPem("EC PRIVATE KEY") } }) });
        const checked = await host.check({}, inputs);
        assert.deepStrictEqual(checked.failures, [{ property: "content", reason: "holds private key material; the runtime bucket is for public material only" }]);
        await assert.rejects(host.checkAndCreate(inputs), /content: holds private key material/);
        assert.strictEqual(await stored(inputs.key), undefined);
    });

    it("refuses content that is not JSON at check time", async () => {
        const checked = await host.check({}, inputsFor({ content: "{ half" }));
        assert.deepStrictEqual(checked.failures?.map((f) => f.property), ["content"]);
        assert.match(checked.failures![0].reason, /^is not JSON: /);
    });

    it("names the object and what the key needs when the store refuses the write", async () => {
        const inputs = inputsFor({ secretAccessKey: "not-the-secret-0000000000" });
        await assert.rejects(host.checkAndCreate(inputs), (err: Error) => {
            assert.match(err.message, new RegExp(`PUT s3://${BUCKET}/${inputs.key.replace(/\//g, "\\/")} at ${minio.endpoint} failed: HTTP 403 SignatureDoesNotMatch`));
            assert.match(err.message, /needs read_write on the runtime bucket/);
            return true;
        });
    });
});
