import * as assert from "assert";
import { execFileSync } from "child_process";
import { isWgPublicKey } from "../lib/wgKey";
import { DEFAULT_POLL_POLICY, pollDelayMs, pollForPublicKey, PollPolicy, PollResponse } from "../providers/wgPubkeyPoll";
import { toolPath } from "./support/tools";

const NO_JITTER: PollPolicy = { ...DEFAULT_POLL_POLICY, jitter: 0 };

/** Runs the poll loop on a simulated clock against a scripted sequence of responses (the last one repeats). */
async function simulatedPoll(policy: PollPolicy, responses: PollResponse[]): Promise<{ publicKey?: string; error?: string; now: number; attempts: number }> {
    let now = 0;
    let attempts = 0;
    try {
        const result = await pollForPublicKey(
            { endpoint: "http://store", region: "r", bucket: "b", key: "k", nodeLabel: "node", nodeAddress: "198.51.100.1", bootstrapLogPath: "/var/log/x.log" },
            policy,
            {
                now: () => now,
                sleep: async (ms) => void (now += ms),
                random: () => 0.5,
                get: async () => responses[Math.min(attempts++, responses.length - 1)],
                log: () => undefined,
            },
        );
        return { publicKey: result.publicKey, now, attempts };
    } catch (err) {
        return { error: (err as Error).message, now, attempts };
    }
}

const s3 = (status: number, errorCode?: string, body = ""): PollResponse => ({ status, errorCode, body: Buffer.from(body) });

describe("WgPubkeyPoll policy and key validation (simulated clock)", () => {
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
        const result = await simulatedPoll(policy, [...burst, s3(404, "NoSuchKey"), ...burst, s3(503), ...burst, s3(200, undefined, realKey)]);
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
});
