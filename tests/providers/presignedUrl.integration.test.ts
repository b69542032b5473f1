import * as assert from "assert";
import { execFile } from "child_process";
import { promisify } from "util";
import { PresignedUrl, PresignedUrlInputs } from "../../providers/presignedUrl";
import { captureDynamicResource, CapturedDynamicResource, ProviderHost } from "../harness/dynamicProviders";
import { MinioServer } from "../support/minio";

const run = promisify(execFile);
const BUCKET = "presign-tests";

/** curl as the nodes run it: --fail-with-body, status code printed last. */
async function curl(args: string[]): Promise<{ status: number; body: string }> {
    const { stdout } = await run("curl", ["-sS", "--path-as-is", "-o", "-", "-w", "\n%{http_code}", ...args]).catch((e) => ({ stdout: e.stdout as string }));
    const cut = stdout.lastIndexOf("\n");
    return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}

describe("PresignedUrl provider against MinIO (serialized, in a fresh host process)", function () {
    this.timeout(120_000);
    let minio: MinioServer;
    let captured: CapturedDynamicResource;
    let host: ProviderHost;

    before(async () => {
        minio = await MinioServer.start();
        await minio.createBucket(BUCKET);
        captured = await captureDynamicResource(
            () =>
                new PresignedUrl("probe", {
                    endpoint: minio.endpoint, region: minio.region, bucket: BUCKET, key: "probe.txt", method: "PUT",
                    expiresInSeconds: 600, accessKeyId: minio.credentials.accessKeyId, secretAccessKey: minio.credentials.secretAccessKey,
                }),
        );
        host = await ProviderHost.start(captured.serializedProvider);
    });

    after(async () => {
        await host?.close();
        await minio?.stop();
    });

    const inputsFor = (key: string, method: "GET" | "PUT", overrides: Partial<PresignedUrlInputs> = {}): PresignedUrlInputs => ({
        ...(captured.inputs as PresignedUrlInputs), key, method, ...overrides,
    });

    it("marks the secret access key as a secret input", () => {
        assert.ok(captured.secretInputs.includes("secretAccessKey"));
        assert.ok(captured.secretInputs.includes("accessKeyId"));
    });

    it("presigned PUT accepts a body sent with curl and a presigned GET returns it", async () => {
        const put = await host.checkAndCreate(inputsFor("roundtrip/pubkey.txt", "PUT"));
        const uploaded = await curl(["--fail-with-body", "-X", "PUT", "--data-binary", "hello from the node", put.outs.url]);
        assert.strictEqual(uploaded.status, 200, uploaded.body);
        const get = await host.checkAndCreate(inputsFor("roundtrip/pubkey.txt", "GET"));
        const fetched = await curl([get.outs.url]);
        assert.deepStrictEqual(fetched, { status: 200, body: "hello from the node" });
    });

    const specialKeys = [
        "with space/and+plus.txt",
        "tilde~and-dash_under.score",
        "deep/nested/path/to/object",
        "unicode/ключ-😀-é.txt",
        "reserved/!'()*&$,;=@:.txt",
        "percent%20literal",
    ];
    for (const key of specialKeys) {
        it(`round-trips the key ${JSON.stringify(key)}`, async () => {
            const body = `body of ${key}`;
            const put = await host.checkAndCreate(inputsFor(key, "PUT"));
            const uploaded = await curl(["--fail-with-body", "-X", "PUT", "--data-binary", body, put.outs.url]);
            assert.strictEqual(uploaded.status, 200, uploaded.body);
            assert.strictEqual((await minio.getObject(BUCKET, key))?.toString(), body);
            const get = await host.checkAndCreate(inputsFor(key, "GET"));
            assert.deepStrictEqual(await curl([get.outs.url]), { status: 200, body });
        });
    }

    it("refuses a URL whose signature was tampered with", async () => {
        await minio.putObject(BUCKET, "tamper.txt", "x");
        const { outs } = await host.checkAndCreate(inputsFor("tamper.txt", "GET"));
        const url = new URL(outs.url);
        const signature = url.searchParams.get("X-Amz-Signature")!;
        url.searchParams.set("X-Amz-Signature", (signature[0] === "a" ? "b" : "a") + signature.slice(1));
        const response = await curl([url.toString()]);
        assert.strictEqual(response.status, 403);
        assert.match(response.body, /SignatureDoesNotMatch/);
    });

    it("refuses a URL that names another key than the one signed", async () => {
        await minio.putObject(BUCKET, "other.txt", "secret");
        const { outs } = await host.checkAndCreate(inputsFor("signed.txt", "GET"));
        const response = await curl([outs.url.replace("/signed.txt?", "/other.txt?")]);
        assert.strictEqual(response.status, 403);
    });

    it("refuses a URL signed with the wrong secret", async () => {
        await minio.putObject(BUCKET, "wrong-secret.txt", "x");
        const { outs } = await host.checkAndCreate(inputsFor("wrong-secret.txt", "GET", { secretAccessKey: "not-the-secret-0000000000" }));
        const response = await curl([outs.url]);
        assert.strictEqual(response.status, 403);
        assert.match(response.body, /SignatureDoesNotMatch/);
    });

    it("refuses an expired URL", async () => {
        await minio.putObject(BUCKET, "expiring.txt", "x");
        const { outs } = await host.checkAndCreate(inputsFor("expiring.txt", "GET", { expiresInSeconds: 1 }));
        await new Promise((r) => setTimeout(r, 2100));
        const response = await curl([outs.url]);
        assert.strictEqual(response.status, 403);
        assert.match(response.body, /expired/i);
    });

    it("rejects an expiry beyond SigV4's seven days at check time", async () => {
        const checked = await host.check({}, inputsFor("k", "GET", { expiresInSeconds: 7 * 24 * 3600 + 1 }));
        assert.deepStrictEqual(checked.failures?.map((f) => f.property), ["expiresInSeconds"]);
        assert.match(checked.failures![0].reason, /604800/);
    });

    it("rejects keys that HTTP clients would rewrite", async () => {
        const checked = await host.check({}, inputsFor("a/../b", "GET"));
        assert.deepStrictEqual(checked.failures?.map((f) => f.property), ["key"]);
    });

    it("keeps the same URL when inputs are unchanged (no diff, read returns it as is)", async () => {
        const inputs = inputsFor("stable.txt", "GET");
        const { id, outs } = await host.checkAndCreate(inputs);
        const diff = await host.diff(id, outs, inputs);
        assert.strictEqual(diff.changes, false);
        const read = await host.read(id, outs);
        assert.strictEqual(read.props.url, outs.url);
    });

    it("re-signs on update when a keeper changes, returning the full outputs", async () => {
        const inputs = inputsFor("rotate.txt", "GET", { keepers: { instance: "a" } });
        const { id, outs } = await host.checkAndCreate(inputs);
        const changed = { ...inputs, keepers: { instance: "b" } };
        const diff = await host.diff(id, outs, changed);
        assert.deepStrictEqual([diff.changes, diff.replaces], [true, []]);
        await new Promise((r) => setTimeout(r, 1100));
        const updated = await host.update(id, outs, changed);
        assert.notStrictEqual(updated.outs.url, outs.url);
        for (const field of ["url", "signedAt", "expiresAt", "bucket", "key", "method", "keepers"]) {
            assert.ok(updated.outs[field] !== undefined, `update output lacks ${field}`);
        }
    });

    it("keeps the URL through a key rotation or a new lifetime alone, and stores no secret", async () => {
        const inputs = inputsFor("creds.txt", "GET");
        const { id, outs } = await host.checkAndCreate(inputs);
        assert.ok(!JSON.stringify(outs).includes(inputs.secretAccessKey));
        assert.ok(!("accessKeyId" in outs) && !("secretAccessKey" in outs));
        for (const change of [{ secretAccessKey: "rotated-secret-000000000" }, { accessKeyId: "ROTATEDKEY", secretAccessKey: "rotated-secret-000000000" }, { expiresInSeconds: inputs.expiresInSeconds + 600 }]) {
            const diff = await host.diff(id, outs, { ...inputs, ...change });
            assert.deepStrictEqual([diff.changes, diff.diffs], [false, []], JSON.stringify(Object.keys(change)));
        }
    });

    it("delete succeeds (a presigned URL cannot be revoked, it lapses)", async () => {
        const { id, outs } = await host.checkAndCreate(inputsFor("gone.txt", "GET"));
        await host.delete(id, outs);
    });
});
