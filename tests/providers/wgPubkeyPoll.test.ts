import { truncatedPrivateKeyPem } from "../fixtures/privateKeyPem";
import * as assert from "assert";
import { execFileSync } from "child_process";
import { natsRouteCertProfile, natsServerCertProfile } from "../../cloudinit/natsCerts";
import { RequestedIdentity, requestedIdentity } from "../../lib/certRequest";
import { RUNTIME_FORMAT_VERSION } from "../../lib/runtimeChannel";
import { NatsNode } from "../../lib/topology";
import { isWgPublicKey } from "../../lib/wgKey";
import { DEFAULT_POLL_POLICY, pollDelayMs, pollForPublicKey, PollPolicy, PollResponse } from "../../providers/wgPubkeyPoll";
import { opensslCertRequest } from "../support/certRequests";
import { toolPath } from "../support/tools";

const NO_JITTER: PollPolicy = { ...DEFAULT_POLL_POLICY, jitter: 0 };

/** Runs the poll loop on a simulated clock against a scripted sequence of responses (the last one repeats). */
async function simulatedPoll(
    policy: PollPolicy,
    responses: PollResponse[],
    expectedRequests: Record<string, RequestedIdentity> = {},
): Promise<{ publicKey?: string; requests?: Record<string, string>; error?: string; now: number; attempts: number; logs: string[] }> {
    let now = 0;
    let attempts = 0;
    const logs: string[] = [];
    try {
        const result = await pollForPublicKey(
            { endpoint: "http://store", region: "r", bucket: "b", key: "k", node: "nats-1", instanceId: "4711", expectedRequests, nodeLabel: "node", nodeAddress: "198.51.100.1", bootstrapLogPath: "/var/log/x.log" },
            policy,
            {
                now: () => now,
                sleep: async (ms) => void (now += ms),
                random: () => 0.5,
                get: async () => responses[Math.min(attempts++, responses.length - 1)],
                log: (line) => logs.push(line),
            },
        );
        return { publicKey: result.publicKey, requests: result.requests, now, attempts, logs };
    } catch (err) {
        return { error: (err as Error).message, now, attempts, logs };
    }
}

const s3 = (status: number, errorCode?: string, body = ""): PollResponse => ({ status, errorCode, body: Buffer.from(body) });
const NODE: NatsNode = { index: 1, hostname: "meshstack-dev-1", wgAddress: "10.44.0.11" } as NatsNode;
const PROFILES = { route: requestedIdentity(natsRouteCertProfile(NODE)), server: requestedIdentity(natsServerCertProfile(NODE, "meshstack-dev.nats.internal")) };
const ROUTE_CSR = opensslCertRequest(PROFILES.route);
const SERVER_CSR = opensslCertRequest(PROFILES.server);
/** The JSON a node publishes, as the poll expects it unless overridden. */
const published = (wgPublicKey: string, overrides: Record<string, unknown> = {}): string =>
    JSON.stringify({ version: RUNTIME_FORMAT_VERSION, node: "nats-1", instanceId: "4711", wgPublicKey, certificateRequests: {}, ...overrides });

describe("WgPubkeyPoll policy, key and document validation (simulated clock)", () => {
    const realKey = execFileSync(toolPath("wg"), ["pubkey"], { input: execFileSync(toolPath("wg"), ["genkey"]) }).toString();
    const keys: [string, string, boolean][] = [
        ["a key as `wg pubkey` prints it (trailing newline)", realKey, true],
        ["the same key trimmed", realKey.trim(), true],
        ["31 bytes", Buffer.alloc(31, 1).toString("base64"), false],
        ["33 bytes", Buffer.alloc(33, 1).toString("base64"), false],
        ["non-canonical base64 (stray low bits)", realKey.trim().slice(0, 42) + "B=", false],
        ["all zeros", Buffer.alloc(32).toString("base64"), false],
        ["empty object", "", false],
        ["an HTML error page", "<html><body>Service Unavailable</body></html>", false],
        ["two keys", `${realKey}${realKey}`, false],
    ];
    for (const [name, text, valid] of keys) {
        it(`${valid ? "accepts" : "rejects"} ${name}`, () => assert.strictEqual(isWgPublicKey(text.trim()), valid));
    }

    it("grows the wait from the initial delay to the cap", () => {
        const waits = [0, 1, 2, 3, 4, 10].map((attempt) => pollDelayMs(NO_JITTER, attempt, Math.random));
        assert.deepStrictEqual(waits, [2000, 3000, 4500, 6000, 6000, 6000]);
    });

    it("keeps jittered waits within ±jitter of the schedule", () => {
        for (const r of [0, 0.25, 0.999]) {
            const wait = pollDelayMs(DEFAULT_POLL_POLICY, 10, () => r);
            assert.ok(wait >= 6000 * 0.8 && wait <= 6000 * 1.2, `wait ${wait} for random ${r}`);
        }
    });

    it("restarts the auth grace after any non-auth answer, so separate short 403 bursts do not add up", async () => {
        const policy = { ...NO_JITTER, authGraceMs: 8_000 };
        const burst = [s3(403, "InvalidAccessKeyId"), s3(403, "InvalidAccessKeyId")];
        const result = await simulatedPoll(policy, [...burst, s3(404, "NoSuchKey"), ...burst, s3(503), ...burst, s3(200, undefined, published(realKey.trim()))]);
        assert.strictEqual(result.publicKey, realKey.trim());
        assert.strictEqual(result.attempts, 9);
    });

    it("fails as an authorization problem once 403s outlast the grace, long before the timeout", async () => {
        const result = await simulatedPoll({ ...NO_JITTER, authGraceMs: 45_000 }, [s3(403, "AccessDenied")]);
        assert.match(result.error!, /^authorization problem, not a missing key: .*HTTP 403 AccessDenied/);
        assert.ok(result.now >= 45_000 && result.now < 60_000, `gave up at ${result.now} ms`);
    });

    it("treats a 400 signing error (wrong region) as an authorization problem too", async () => {
        const result = await simulatedPoll({ ...NO_JITTER, authGraceMs: 10_000 }, [s3(400, "AuthorizationHeaderMalformed")]);
        assert.match(result.error!, /authorization problem.*HTTP 400 AuthorizationHeaderMalformed/);
    });

    it("makes a last attempt at the deadline and never sleeps past it", async () => {
        const result = await simulatedPoll({ ...NO_JITTER, timeoutMs: 10_000 }, [s3(404, "NoSuchKey")]);
        assert.strictEqual(result.now, 10_000);
        assert.match(result.error!, /^timed out after 10\.0s .*: 4 attempts, last response HTTP 404 NoSuchKey/);
    });

    it("takes a predecessor's document (another instance id) for \"not yet\" and keeps polling until this instance's appears", async () => {
        const predecessor = execFileSync(toolPath("wg"), ["pubkey"], { input: execFileSync(toolPath("wg"), ["genkey"]) }).toString().trim();
        const stale = s3(200, undefined, published(predecessor, { instanceId: "4710" }));
        const result = await simulatedPoll(NO_JITTER, [s3(404, "NoSuchKey"), stale, stale, stale, s3(200, undefined, published(realKey.trim()))]);
        assert.strictEqual(result.publicKey, realKey.trim());
        assert.strictEqual(result.attempts, 5);
        assert.strictEqual(result.logs.filter((l) => /is from instance "4710", not 4711 \(a previous instance's key\), not published yet/.test(l)).length, 3);
    });

    it("times out, never answers, while only a predecessor's document is there", async () => {
        const result = await simulatedPoll({ ...NO_JITTER, timeoutMs: 10_000 }, [s3(200, undefined, published(realKey.trim(), { instanceId: "4710" }))]);
        assert.strictEqual(result.publicKey, undefined);
        assert.match(result.error!, /^timed out .*last response HTTP 200 but the document is from instance "4710", not 4711/);
    });

    it("takes a half-written or non-JSON object for \"not yet\"", async () => {
        const whole = published(realKey.trim());
        const result = await simulatedPoll(NO_JITTER, [s3(200, undefined, whole.slice(0, 40)), s3(200, undefined, realKey), s3(200, undefined, "<html>captive portal</html>"), s3(200, undefined, "null"), s3(200, undefined, whole)]);
        assert.strictEqual(result.publicKey, realKey.trim());
        assert.strictEqual(result.attempts, 5);
        assert.strictEqual(result.logs.filter((l) => /HTTP 200 but the object's \d+ bytes are not JSON \(a partial write\?\)/.test(l)).length, 3);
        assert.ok(result.logs.some((l) => /HTTP 200 but the document is not a JSON object/.test(l)));
    });

    it("waits for every certificate request it expects and returns them by name", async () => {
        const result = await simulatedPoll(
            NO_JITTER,
            [s3(200, undefined, published(realKey.trim(), { certificateRequests: { route: ROUTE_CSR } })), s3(200, undefined, published(realKey.trim(), { certificateRequests: { route: ROUTE_CSR, server: SERVER_CSR } }))],
            PROFILES,
        );
        assert.deepStrictEqual(result.requests, { route: ROUTE_CSR, server: SERVER_CSR });
        assert.ok(result.logs.some((l) => /has no PEM certificate request "server"/.test(l)));
    });

    it("refuses at once, signing nothing, this instance's document whose request asks for names outside the node's profile", async () => {
        // The route request under the server's name: the service name is missing from it.
        const result = await simulatedPoll(NO_JITTER, [s3(200, undefined, published(realKey.trim(), { certificateRequests: { route: ROUTE_CSR, server: ROUTE_CSR } }))], PROFILES);
        assert.strictEqual(result.attempts, 1);
        assert.match(result.error!, /^refusing to sign for node node: its published material at s3:\/\/b\/k at http:\/\/store holds a certificate request "server" asks for DNS names \["meshstack-dev-1"\], not \["meshstack-dev-1","meshstack-dev.nats.internal"\]\. .*Nothing was signed/);
    });

    it("takes a document holding a private key for \"not yet\", never returning its material", async () => {
        const leaky = published(realKey.trim(), { certificateRequests: { route: ROUTE_CSR }, note: truncatedPrivateKeyPem("EC PRIVATE KEY") });
        const result = await simulatedPoll({ ...NO_JITTER, timeoutMs: 5_000 }, [s3(200, undefined, leaky)], { route: PROFILES.route });
        assert.match(result.error!, /holds private key material/);
    });
});
