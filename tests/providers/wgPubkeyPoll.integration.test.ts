import * as assert from "assert";
import { execFileSync } from "child_process";
import { RUNTIME_FORMAT_VERSION } from "../../lib/runtimeChannel";
import { PollPolicy, WgPubkeyPoll, WgPubkeyPollInputs } from "../../providers/wgPubkeyPoll";
import { captureDynamicResource, CapturedDynamicResource, ProviderHost } from "../harness/dynamicProviders";
import { opensslCertRequest } from "../support/certRequests";
import { MinioServer } from "../support/minio";
import { freePort } from "../support/ports";
import { S3FaultShim } from "../support/s3FaultShim";
import { toolPath } from "../support/tools";

const BUCKET = "wg-poll-tests";
const FAST_POLICY: PollPolicy = {
    initialDelayMs: 100, multiplier: 1.5, maxIntervalMs: 300, jitter: 0.2, timeoutMs: 15_000, authGraceMs: 1_500, requestTimeoutMs: 2_000,
};

function newPublicKey(): string {
    const privateKey = execFileSync(toolPath("wg"), ["genkey"]);
    return execFileSync(toolPath("wg"), ["pubkey"], { input: privateKey }).toString().trim();
}

/** The document a node publishes (lib/runtimeChannel.ts); the poll expects node wg-cache, instance 10001. */
function published(wgPublicKey: string, overrides: Record<string, unknown> = {}): string {
    return JSON.stringify({ version: RUNTIME_FORMAT_VERSION, node: "wg-cache", instanceId: "10001", wgPublicKey, certificateRequests: {}, ...overrides });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, probe: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!probe()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(25);
    }
}

/** A shim in front of MinIO refusing the first `refusals` requests with an S3 error. */
function refusingShim(upstream: string, refusals: number, status: number, code: string): Promise<S3FaultShim> {
    return S3FaultShim.start((_method, count) => (count <= refusals ? { status, code } : "forward"), upstream);
}

describe("WgPubkeyPoll provider against MinIO (serialized, in a fresh host process)", function () {
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
                new WgPubkeyPoll("probe", {
                    endpoint: minio.endpoint, region: minio.region, bucket: BUCKET, key: "published/test/wg-cache/0.json", node: "wg-cache", expectedRequests: {},
                    accessKeyId: minio.credentials.accessKeyId, secretAccessKey: minio.credentials.secretAccessKey,
                    instanceId: "10001", nodeLabel: "meshstack-test-cache-node-abc123", nodeAddress: "203.0.113.9",
                    bootstrapLogPath: "/var/log/meshstack-wg-bootstrap.log", policy: FAST_POLICY,
                }),
        );
        host = await ProviderHost.start(captured.serializedProvider);
    });

    after(async () => {
        await host?.close();
        await minio?.stop();
    });

    /** Inputs for a fresh object key, so tests never see each other's objects. */
    const inputsFor = (overrides: Partial<WgPubkeyPollInputs> = {}): WgPubkeyPollInputs => ({
        ...(captured.inputs as WgPubkeyPollInputs),
        key: `published/test/wg-cache/${++keyCounter}.json`,
        ...overrides,
    });
    const logsSince = (mark: number) => host.logs.slice(mark);

    it("passes the bucket key as secret inputs and keeps it out of the state", async () => {
        assert.deepStrictEqual(captured.secretInputs.sort(), ["accessKeyId", "secretAccessKey"]);
        const inputs = inputsFor();
        await minio.putObject(BUCKET, inputs.key, published(newPublicKey()));
        const { outs } = await host.checkAndCreate(inputs);
        assert.ok(!JSON.stringify(outs).includes(minio.credentials.secretAccessKey));
        assert.ok(!("accessKeyId" in outs) && !("secretAccessKey" in outs));
    });

    it("waits for an object that appears late, logging each attempt with elapsed time and status", async () => {
        const inputs = inputsFor();
        const key = newPublicKey();
        const mark = host.logs.length;
        const polling = host.checkAndCreate(inputs);
        await until("three unanswered attempts", () => logsSince(mark).filter((l) => /not published yet/.test(l)).length >= 3);
        await minio.putObject(BUCKET, inputs.key, published(key));
        const { outs } = await polling;
        assert.strictEqual(outs.publicKey, key);
        assert.ok(outs.attempts >= 4, `attempts ${outs.attempts}`);
        const waiting = logsSince(mark).filter((l) => /not published yet/.test(l));
        assert.match(waiting[0], new RegExp(`s3://${BUCKET}/${inputs.key} .*attempt 1 at \\d+\\.\\ds: HTTP 404 NoSuchKey, not published yet; giving up in \\d+\\.\\ds`));
        assert.ok(logsSince(mark).some((l) => /found the public material of meshstack-test-cache-node-abc123/.test(l)));
    });

    it("keeps polling through objects that are not the document (garbage, half-written, a truncated key), then returns the key", async () => {
        const inputs = inputsFor();
        const key = newPublicKey();
        const mark = host.logs.length;
        await minio.putObject(BUCKET, inputs.key, "<html>captive portal</html>");
        const polling = host.checkAndCreate(inputs);
        await until("a garbage verdict", () => logsSince(mark).some((l) => /HTTP 200 but the object's 27 bytes are not JSON/.test(l)));
        const half = published(key).slice(0, 50);
        await minio.putObject(BUCKET, inputs.key, half);
        await until("a half-written verdict", () => logsSince(mark).some((l) => new RegExp(`the object's ${half.length} bytes are not JSON \\(a partial write\\?\\)`).test(l)));
        // A truncated key (base64 of 31 bytes) is not a key either.
        await minio.putObject(BUCKET, inputs.key, published(Buffer.alloc(31, 7).toString("base64")));
        await until("a truncated-key verdict", () => logsSince(mark).some((l) => /the document has no valid WireGuard public key/.test(l)));
        await minio.putObject(BUCKET, inputs.key, published(key));
        const { outs } = await polling;
        assert.strictEqual(outs.publicKey, key);
    });

    it("takes a predecessor's document for not yet after a bare instance replacement, and returns this instance's once it appears", async () => {
        const inputs = inputsFor();
        const predecessorKey = newPublicKey();
        const key = newPublicKey();
        const mark = host.logs.length;
        await minio.putObject(BUCKET, inputs.key, published(predecessorKey, { instanceId: "10000" }));
        const polling = host.checkAndCreate(inputs);
        await until("two stale verdicts", () => logsSince(mark).filter((l) => /is from instance "10000", not 10001 \(a previous instance's key\), not published yet/.test(l)).length >= 2);
        await minio.putObject(BUCKET, inputs.key, published(key));
        const { outs } = await polling;
        assert.strictEqual(outs.publicKey, key);
        assert.notStrictEqual(outs.publicKey, predecessorKey);
    });

    it("retries a 403 that clears within the grace period (a new access key propagating)", async () => {
        const proxy = await refusingShim(minio.endpoint, 3, 403, "InvalidAccessKeyId");
        try {
            const inputs = inputsFor({ endpoint: proxy.endpoint });
            const key = newPublicKey();
            await minio.putObject(BUCKET, inputs.key, published(key));
            const mark = host.logs.length;
            const { outs } = await host.checkAndCreate(inputs);
            assert.strictEqual(outs.publicKey, key);
            assert.strictEqual(outs.attempts, 4);
            assert.strictEqual(logsSince(mark).filter((l) => /HTTP 403 InvalidAccessKeyId, refused, retried while a new key propagates/.test(l)).length, 3);
        } finally {
            await proxy.stop();
        }
    });

    it("stops after the grace period with an authorization error when 403 persists (wrong secret)", async () => {
        const inputs = inputsFor({ secretAccessKey: "not-the-secret-0000000000" });
        await minio.putObject(BUCKET, inputs.key, published(newPublicKey()));
        const started = Date.now();
        await assert.rejects(host.checkAndCreate(inputs), (err: Error) => {
            assert.match(err.message, /^authorization problem, not a missing key/);
            assert.match(err.message, /HTTP 403 SignatureDoesNotMatch/);
            assert.match(err.message, new RegExp(`s3://${BUCKET}/${inputs.key}`));
            assert.doesNotMatch(err.message, /timed out/);
            return true;
        });
        const took = Date.now() - started;
        assert.ok(took >= FAST_POLICY.authGraceMs && took < FAST_POLICY.timeoutMs / 2, `took ${took} ms`);
    });

    it("treats a 503 as transient, not as an authorization problem", async () => {
        const proxy = await refusingShim(minio.endpoint, 6, 503, "SlowDown");
        try {
            const inputs = inputsFor({ endpoint: proxy.endpoint });
            const key = newPublicKey();
            await minio.putObject(BUCKET, inputs.key, published(key));
            const { outs } = await host.checkAndCreate(inputs);
            assert.strictEqual(outs.publicKey, key);
            assert.strictEqual(outs.attempts, 7);
        } finally {
            await proxy.stop();
        }
    });

    it("times out with an error naming bucket, key, attempts, last status and how to read the bootstrap log", async () => {
        const inputs = inputsFor({ policy: { ...FAST_POLICY, timeoutMs: 1_500 } });
        const mark = host.logs.length;
        await assert.rejects(host.checkAndCreate(inputs), (err: Error) => {
            const attempts = logsSince(mark).filter((l) => /not published yet/.test(l)).length + 1;
            assert.match(err.message, /^timed out after 1\.\ds waiting for node meshstack-test-cache-node-abc123/);
            assert.match(err.message, new RegExp(`bucket ${BUCKET}, key ${inputs.key.replace(/\//g, "\\/")}`));
            assert.match(err.message, new RegExp(`: ${attempts} attempts, last response HTTP 404 NoSuchKey`));
            assert.match(err.message, /ssh root@203\.0\.113\.9 cat \/var\/log\/meshstack-wg-bootstrap\.log/);
            assert.match(err.message, /meshstack:breakGlassSshCidrs/);
            assert.match(err.message, /LISH console/);
            return true;
        });
    });

    it("reports an unreachable endpoint as the last status when it times out", async () => {
        const closedPort = await freePort();
        const inputs = inputsFor({ endpoint: `http://127.0.0.1:${closedPort}`, policy: { ...FAST_POLICY, timeoutMs: 800 } });
        await assert.rejects(host.checkAndCreate(inputs), /last response network error \(.*ECONNREFUSED/);
    });

    it("exits promptly when the engine kills the host mid-poll (cancellation)", async () => {
        const own = await ProviderHost.start(captured.serializedProvider);
        try {
            const polling = own.checkAndCreate(inputsFor({ policy: { ...FAST_POLICY, timeoutMs: 60_000 } }));
            const outcome = polling.then(() => "resolved", (err: Error) => err.message);
            await until("the poll to be waiting", () => own.logs.some((l) => /not published yet/.test(l)));
            const killedAt = Date.now();
            const exitCode = await own.kill("SIGTERM");
            const exitMs = Date.now() - killedAt;
            assert.ok(exitMs < 2_000, `host took ${exitMs} ms to exit`);
            assert.strictEqual(exitCode, null);
            assert.match(await outcome, /provider host exited/);
        } finally {
            await own.close();
        }
    });

    it("rejects an unusable policy, node or request list at check time, naming the field and what is allowed", async () => {
        const checked = await host.check({}, inputsFor({ policy: { ...FAST_POLICY, jitter: 1.5, multiplier: 0.5 }, instanceId: "", node: "", expectedRequests: { route: { commonName: "n", organization: "o", dnsNames: "n" } } as never }));
        assert.deepStrictEqual(checked.failures?.map((f) => f.property).sort(), ["expectedRequests", "instanceId", "node", "policy.jitter", "policy.multiplier"]);
        assert.match(checked.failures!.find((f) => f.property === "expectedRequests")!.reason, /^got \{"route":\{"commonName":"n","organization":"o","dnsNames":"n"\}\}; allowed: an object of request name to \{ commonName, organization, dnsNames, ipAddresses \} \(empty for none\)$/);
        assert.match(checked.failures!.find((f) => f.property === "policy.jitter")!.reason, /from 0 up to/);
    });

    it("polls again (replace) for a new instance, and updates descriptive fields in place with full outputs", async () => {
        const inputs = inputsFor();
        const key = newPublicKey();
        await minio.putObject(BUCKET, inputs.key, published(key));
        const { id, outs } = await host.checkAndCreate(inputs);
        assert.deepStrictEqual(await host.diff(id, outs, inputs), { changes: false, diffs: [], replaces: [], deleteBeforeReplace: false });
        const replaced = await host.diff(id, outs, { ...inputs, instanceId: "10002" });
        assert.deepStrictEqual(replaced.replaces, ["instanceId"]);
        // Another generation's object or other expected requests are another answer too.
        assert.deepStrictEqual((await host.diff(id, outs, { ...inputs, key: "published/test/wg-cache/next.json" })).replaces, ["key"]);
        assert.deepStrictEqual((await host.diff(id, outs, { ...inputs, expectedRequests: { route: { commonName: "n", organization: "o", dnsNames: [], ipAddresses: [] } } })).replaces, ["expectedRequests"]);
        const relabelled = { ...inputs, nodeLabel: "renamed-node", policy: { ...FAST_POLICY, timeoutMs: 20_000 } };
        const diff = await host.diff(id, outs, relabelled);
        assert.deepStrictEqual([diff.changes, diff.replaces], [true, []]);
        const updated = await host.update(id, outs, relabelled);
        assert.strictEqual(updated.outs.publicKey, key);
        assert.strictEqual(updated.outs.nodeLabel, "renamed-node");
        for (const field of ["publicKey", "attempts", "waitedMs", "foundAt", "bucket", "key", "instanceId", "policy"]) {
            assert.ok(updated.outs[field] !== undefined, `update output lacks ${field}`);
        }
        await host.delete(id, updated.outs);
    });

    it("checks certificate requests in place when only their expected names change, and refuses, signing nothing, when they no longer match", async () => {
        const route = { commonName: "meshstack-test-0", organization: "meshstack", dnsNames: ["meshstack-test-0"], ipAddresses: ["10.44.0.10"] };
        const inputs = inputsFor({ expectedRequests: { route } });
        const routeRequest = opensslCertRequest(route);
        await minio.putObject(BUCKET, inputs.key, published(newPublicKey(), { certificateRequests: { route: routeRequest } }));
        const { id, outs } = await host.checkAndCreate(inputs);
        assert.strictEqual(outs.requests.route, routeRequest);

        // State from before requests were checked: names only. Same names, so an update that checks them, not a new poll.
        const { expectedRequests: _, ...legacy } = { ...outs, requestNames: ["route"] };
        const upgrade = await host.diff(id, legacy, inputs);
        assert.deepStrictEqual([upgrade.changes, upgrade.replaces, upgrade.diffs], [true, [], ["expectedRequests"]]);
        const upgraded = await host.update(id, legacy, inputs);
        assert.deepStrictEqual([upgraded.outs.expectedRequests, upgraded.outs.requestNames, upgraded.outs.requests], [{ route }, undefined, outs.requests]);

        const renamed = { ...inputs, expectedRequests: { route: { ...route, dnsNames: ["meshstack-test-0", "nats-0.example.net"] } } };
        assert.deepStrictEqual((await host.diff(id, outs, renamed)).replaces, []);
        await assert.rejects(host.update(id, outs, renamed), /refusing to sign for node .*certificate request "route" asks for DNS names \["meshstack-test-0"\], not \["meshstack-test-0","nats-0.example.net"\]\. .*Nothing was signed/);
        await host.delete(id, outs);
    });
});
