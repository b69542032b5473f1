import * as assert from "assert";
import {
    BootstrapObject,
    BootstrapObjectCleanup,
    BootstrapObjectCleanupInputs,
    BootstrapObjectInputs,
} from "../../providers/bootstrapObject";
import { captureDynamicResource, CapturedDynamicResource, ProviderHost } from "../harness/dynamicProviders";
import { MinioServer } from "../support/minio";
import { S3FaultShim } from "../support/s3FaultShim";

const BUCKET = "bootstrap-objects";
/** Where nodes publish (the runtime bucket): the cleanup's proof that a node fetched its object. */
const RUNTIME_BUCKET = "runtime-channel";
const CONTENT = "#cloud-config\nwrite_files:\n  - path: /etc/meshstack/secret\n    content: not-for-the-state-file\n";

describe("BootstrapObject and BootstrapObjectCleanup providers against MinIO (serialized, in a fresh host process)", function () {
    this.timeout(120_000);
    let minio: MinioServer;
    let objectResource: CapturedDynamicResource;
    let cleanupResource: CapturedDynamicResource;
    let objects: ProviderHost;
    let cleanups: ProviderHost;
    const shims: S3FaultShim[] = [];

    before(async () => {
        minio = await MinioServer.start();
        await minio.createBucket(BUCKET);
        await minio.createBucket(RUNTIME_BUCKET);
        const location = { endpoint: minio.endpoint, region: minio.region, bucket: BUCKET, ...minio.credentials };
        objectResource = await captureDynamicResource(
            () => new BootstrapObject("node-bootstrap-object", { ...location, key: "bootstrap/test/node/gen1-aaaa.cloud-config", content: CONTENT, store: true }),
        );
        cleanupResource = await captureDynamicResource(
            () => new BootstrapObjectCleanup("node-bootstrap-cleanup", {
                ...location, key: "bootstrap/test/node/gen1-aaaa.cloud-config", stored: true, instanceId: "1001",
                publishedBucket: RUNTIME_BUCKET, publishedKey: "published/test/node/gen1.json", deadlineSeconds: 60,
            }),
        );
        objects = await ProviderHost.start(objectResource.serializedProvider);
        cleanups = await ProviderHost.start(cleanupResource.serializedProvider);
    });

    after(async () => {
        await objects?.close();
        await cleanups?.close();
        await Promise.all(shims.map((s) => s.stop()));
        await minio?.stop();
    });

    const objectInputs = (key: string, overrides: Partial<BootstrapObjectInputs> = {}): BootstrapObjectInputs => ({
        ...(objectResource.inputs as BootstrapObjectInputs), key, ...overrides,
    });
    const cleanupInputs = (key: string, overrides: Partial<BootstrapObjectCleanupInputs> = {}): BootstrapObjectCleanupInputs => ({
        ...(cleanupResource.inputs as BootstrapObjectCleanupInputs), key, ...overrides,
    });
    const newLogs = (host: ProviderHost, from: number) => host.logs.slice(from).join("\n");
    /** A shim answering HEAD and DELETE as given, anything else 501. */
    async function shim(answers: Partial<Record<"HEAD" | "DELETE", { status: number; code?: string }>>): Promise<S3FaultShim> {
        const started = await S3FaultShim.start((method) => answers[method as "HEAD" | "DELETE"] ?? { status: 501, code: "NotImplemented" });
        shims.push(started);
        return started;
    }

    it("marks the content and the key pair as secret inputs", () => {
        for (const name of ["content", "accessKeyId", "secretAccessKey"]) assert.ok(objectResource.secretInputs.includes(name), name);
        for (const name of ["accessKeyId", "secretAccessKey"]) assert.ok(cleanupResource.secretInputs.includes(name), name);
    });

    it("uploads the original cloud-config and keeps only its digest in state", async () => {
        const { outs } = await objects.checkAndCreate(objectInputs("bootstrap/test/upload/a.cloud-config"));
        assert.strictEqual((await minio.getObject(BUCKET, "bootstrap/test/upload/a.cloud-config"))?.toString(), CONTENT);
        assert.strictEqual(outs.stored, true);
        assert.ok(!JSON.stringify(outs).includes("not-for-the-state-file"));
    });

    it("uploads nothing when the node's user-data goes inline or gzipped", async () => {
        const { outs } = await objects.checkAndCreate(objectInputs("bootstrap/test/inline/a.cloud-config", { store: false }));
        assert.strictEqual(outs.stored, false);
        assert.strictEqual(await minio.getObject(BUCKET, "bootstrap/test/inline/a.cloud-config"), undefined);
    });

    it("rejects a stored object without content at check time", async () => {
        const checked = await objects.check({}, objectInputs("bootstrap/test/empty/a.cloud-config", { content: "" }));
        assert.deepStrictEqual(checked.failures?.map((f) => f.property), ["content"]);
    });

    it("reports no changes on a rerun with the same inputs (no re-upload, no replacement)", async () => {
        const inputs = objectInputs("bootstrap/test/rerun/a.cloud-config");
        const { id, outs } = await objects.checkAndCreate(inputs);
        assert.deepStrictEqual(await objects.diff(id, outs, inputs), { changes: false, diffs: [], replaces: [], deleteBeforeReplace: false });
    });

    it("replaces the object when the content (and so the key) changes, and deleting the old resource removes the old object", async () => {
        const old = objectInputs("bootstrap/test/change/gen1-old.cloud-config");
        const { id, outs } = await objects.checkAndCreate(old);
        const changed = objectInputs("bootstrap/test/change/gen2-new.cloud-config", { content: `${CONTENT}# changed\n` });
        const diff = await objects.diff(id, outs, changed);
        assert.deepStrictEqual([diff.changes, diff.replaces, diff.deleteBeforeReplace], [true, ["key", "content"], false]);
        await objects.checkAndCreate(changed);
        await objects.delete(id, outs);
        assert.strictEqual(await minio.getObject(BUCKET, "bootstrap/test/change/gen1-old.cloud-config"), undefined);
        assert.ok(await minio.getObject(BUCKET, "bootstrap/test/change/gen2-new.cloud-config"));
    });

    it("deletes before replacing when new content reuses the key, so the new upload survives", async () => {
        const inputs = objectInputs("bootstrap/test/same-key/a.cloud-config");
        const { id, outs } = await objects.checkAndCreate(inputs);
        const diff = await objects.diff(id, outs, { ...inputs, content: `${CONTENT}# changed\n` });
        assert.deepStrictEqual([diff.replaces, diff.deleteBeforeReplace], [["content"], true]);
    });

    it("updates in place on a rotated key pair, returning the full outputs and leaving the object alone", async () => {
        const inputs = objectInputs("bootstrap/test/rotate/a.cloud-config");
        const { id, outs } = await objects.checkAndCreate(inputs);
        const rotated = { ...inputs, secretAccessKey: "rotated-secret-0000000000" };
        const diff = await objects.diff(id, outs, rotated);
        assert.deepStrictEqual([diff.changes, diff.replaces], [true, []]);
        const updated = await objects.update(id, outs, rotated);
        assert.deepStrictEqual(updated.outs, { ...outs, secretAccessKey: "rotated-secret-0000000000" });
        assert.strictEqual((await minio.getObject(BUCKET, "bootstrap/test/rotate/a.cloud-config"))?.toString(), CONTENT);
    });

    it("delete removes the object and reports it", async () => {
        const { id, outs } = await objects.checkAndCreate(objectInputs("bootstrap/test/delete/a.cloud-config"));
        const from = objects.logs.length;
        await objects.delete(id, outs);
        assert.strictEqual(await minio.getObject(BUCKET, "bootstrap/test/delete/a.cloud-config"), undefined);
        assert.match(newLogs(objects, from), /bootstrap object deleted: s3:\/\/bootstrap-objects\/bootstrap\/test\/delete\/a\.cloud-config deleted/);
    });

    it("delete tolerates and reports an object that is already gone (404)", async () => {
        const { id, outs } = await objects.checkAndCreate(objectInputs("bootstrap/test/gone/a.cloud-config"));
        await objects.delete(id, outs);
        const from = objects.logs.length;
        await objects.delete(id, outs);
        assert.match(newLogs(objects, from), /bootstrap object already-absent: .*gone\/a\.cloud-config was already gone \(HTTP 404 on HEAD\)/);
    });

    it("delete tolerates and reports a real 403 from MinIO (a key MinIO does not accept) and leaves the object to the lifecycle rule", async () => {
        const { id, outs } = await objects.checkAndCreate(objectInputs("bootstrap/test/forbidden/a.cloud-config"));
        const from = objects.logs.length;
        await objects.delete(id, { ...outs, secretAccessKey: "not-the-secret-000000000000" });
        assert.match(newLogs(objects, from), /bootstrap object forbidden: .*forbidden\/a\.cloud-config not deleted: HTTP 403 SignatureDoesNotMatch; the bucket's lifecycle rule/);
        assert.ok(await minio.getObject(BUCKET, "bootstrap/test/forbidden/a.cloud-config"));
        assert.ok(!newLogs(objects, from).includes("not-the-secret"), "the log must not show credentials");
    });

    it("delete tolerates and reports 403 AccessDenied (test shim)", async () => {
        const fault = await shim({ HEAD: { status: 200 }, DELETE: { status: 403, code: "AccessDenied" } });
        const from = objects.logs.length;
        await objects.delete("shim", { ...objectInputs("bootstrap/test/shim/a.cloud-config"), endpoint: fault.endpoint, stored: true });
        assert.deepStrictEqual(fault.requests, ["HEAD /bootstrap-objects/bootstrap/test/shim/a.cloud-config", "DELETE /bootstrap-objects/bootstrap/test/shim/a.cloud-config"]);
        assert.match(newLogs(objects, from), /bootstrap object forbidden: .* not deleted: HTTP 403 AccessDenied/);
    });

    it("delete still deletes when the key may not read the object (403 Forbidden on HEAD), as the seed does (test shim)", async () => {
        const fault = await shim({ HEAD: { status: 403 }, DELETE: { status: 204 } });
        const from = objects.logs.length;
        await objects.delete("shim", { ...objectInputs("bootstrap/test/shim/b.cloud-config"), endpoint: fault.endpoint, stored: true });
        assert.strictEqual(fault.requests.length, 2);
        assert.match(newLogs(objects, from), /bootstrap object deleted: /);
    });

    it("delete tolerates and reports 404 on DELETE (test shim)", async () => {
        const fault = await shim({ HEAD: { status: 200 }, DELETE: { status: 404, code: "NoSuchKey" } });
        const from = objects.logs.length;
        await objects.delete("shim", { ...objectInputs("bootstrap/test/shim/c.cloud-config"), endpoint: fault.endpoint, stored: true });
        assert.match(newLogs(objects, from), /bootstrap object already-absent: .* was already gone \(HTTP 404 NoSuchKey\)/);
    });

    it("delete fails on other errors, naming the object and how to retry (test shim)", async () => {
        const fault = await shim({ HEAD: { status: 200 }, DELETE: { status: 503, code: "SlowDown" } });
        await assert.rejects(
            objects.delete("shim", { ...objectInputs("bootstrap/test/shim/d.cloud-config"), endpoint: fault.endpoint, stored: true }),
            /deleting bootstrap object s3:\/\/bootstrap-objects\/bootstrap\/test\/shim\/d\.cloud-config failed: HTTP 503 SlowDown; run `pulumi up` again/,
        );
    });

    it("delete of an object that was never stored makes no request", async () => {
        const fault = await shim({});
        await objects.delete("shim", { ...objectInputs("bootstrap/test/shim/e.cloud-config"), endpoint: fault.endpoint, stored: false });
        assert.deepStrictEqual(fault.requests, []);
    });

    /** What a node's first boot writes to the runtime bucket, as far as the cleanup reads it. */
    const publish = (key: string, instanceId: string) =>
        minio.putObject(RUNTIME_BUCKET, key, JSON.stringify({ version: 1, node: "node", instanceId, wgPublicKey: "k", certificateRequests: {} }));

    it("cleanup deletes the object once the instance has published, and reports what it did", async () => {
        const key = "bootstrap/test/cleanup/a.cloud-config";
        await minio.putObject(BUCKET, key, CONTENT);
        await publish("published/test/cleanup/a.json", "1001");
        const { outs } = await cleanups.checkAndCreate(cleanupInputs(key, { publishedKey: "published/test/cleanup/a.json" }));
        assert.strictEqual(await minio.getObject(BUCKET, key), undefined);
        assert.deepStrictEqual([outs.outcome, outs.instanceId, outs.deletedOn], ["deleted", "1001", "published"]);
        assert.ok(!JSON.stringify(outs).includes(minio.credentials.secretAccessKey), "cleanup state must not keep the key pair");
    });

    it("cleanup keeps the object while the node has not published, and deletes it once it has", async () => {
        const key = "bootstrap/test/cleanup/waiting.cloud-config";
        await minio.putObject(BUCKET, key, CONTENT);
        const from = cleanups.logs.length;
        const created = cleanups.checkAndCreate(cleanupInputs(key, { publishedKey: "published/test/cleanup/waiting.json" }));
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        assert.ok(await minio.getObject(BUCKET, key), "the object must still be there while the node may be fetching it");
        await publish("published/test/cleanup/waiting.json", "1001");
        assert.deepStrictEqual([(await created).outs.outcome, (await created).outs.deletedOn], ["deleted", "published"]);
        assert.strictEqual(await minio.getObject(BUCKET, key), undefined);
        assert.match(newLogs(cleanups, from), /keeping s3:\/\/bootstrap-objects\/bootstrap\/test\/cleanup\/waiting\.cloud-config .* until instance 1001 publishes/);
    });

    it("cleanup deletes the object at its deadline when the node never publishes", async () => {
        const key = "bootstrap/test/cleanup/silent.cloud-config";
        await minio.putObject(BUCKET, key, CONTENT);
        const { outs } = await cleanups.checkAndCreate(cleanupInputs(key, { publishedKey: "published/test/cleanup/silent.json", deadlineSeconds: 2 }));
        assert.deepStrictEqual([outs.outcome, outs.deletedOn], ["deleted", "deadline"]);
        assert.strictEqual(await minio.getObject(BUCKET, key), undefined);
    });

    it("cleanup has nothing to do when nothing was stored", async () => {
        const { outs } = await cleanups.checkAndCreate(cleanupInputs("bootstrap/test/cleanup/none.cloud-config", { stored: false, deadlineSeconds: 3600 }));
        assert.strictEqual(outs.outcome, "nothing-stored");
    });

    it("cleanup tolerates and reports 403 AccessDenied (test shim)", async () => {
        const fault = await shim({ HEAD: { status: 200 }, DELETE: { status: 403, code: "AccessDenied" } });
        const { outs } = await cleanups.checkAndCreate(cleanupInputs("bootstrap/test/shim/f.cloud-config", { endpoint: fault.endpoint, deadlineSeconds: 0 }));
        assert.strictEqual(outs.outcome, "forbidden");
        assert.match(outs.detail, /HTTP 403 AccessDenied/);
    });

    it("cleanup does nothing on a rerun and runs again for a replacement instance, returning the full outputs", async () => {
        const key = "bootstrap/test/cleanup/replaced.cloud-config";
        await minio.putObject(BUCKET, key, CONTENT);
        const inputs = cleanupInputs(key, { publishedKey: "published/test/cleanup/replaced.json" });
        await publish("published/test/cleanup/replaced.json", "1001");
        const { id, outs } = await cleanups.checkAndCreate(inputs);
        const rerun = { ...inputs, secretAccessKey: "rotated", deadlineSeconds: 5, publishedKey: "published/test/cleanup/other.json" };
        assert.strictEqual((await cleanups.diff(id, outs, rerun)).changes, false);
        await minio.putObject(BUCKET, key, CONTENT);
        // A bare replacement keeps the publication key: only the new instance's document ends its wait.
        await publish("published/test/cleanup/replaced.json", "1002");
        const replacement = { ...inputs, instanceId: "1002" };
        assert.strictEqual((await cleanups.diff(id, outs, replacement)).changes, true);
        const updated = await cleanups.update(id, outs, replacement);
        assert.deepStrictEqual(updated.outs, { ...outs, instanceId: "1002" });
        assert.strictEqual(await minio.getObject(BUCKET, key), undefined);
    });

    it("cleanup rejects a deadline outside 0 to 3600 seconds and a missing publication key at check time", async () => {
        const checked = await cleanups.check({}, cleanupInputs("bootstrap/test/cleanup/x.cloud-config", { deadlineSeconds: 3601, publishedKey: "" }));
        assert.deepStrictEqual(checked.failures?.map((f) => f.property), ["deadlineSeconds", "publishedKey"]);
    });
});
