/**
 * Detection lag (object written -> poll returned) and GETs per poll for this
 * project's poll policy against seed 000's (5 s initial delay, doubling to a
 * 30 s cap), over the same randomized publish times in one run.
 *
 * Runs the provider's real loop (pollForPublicKey) on a simulated clock: the
 * schedule is all that differs between the policies, and a simulated clock
 * measures minutes of waiting in milliseconds without timer noise.
 *
 *   npx ts-node --transpile-only bench/wgPubkeyPoll.ts [samples] [seed]
 */
import { RUNTIME_FORMAT_VERSION } from "../lib/runtimeChannel";
import { DEFAULT_POLL_POLICY, pollForPublicKey, PollPolicy, PollResponse } from "../providers/wgPubkeyPoll";
import { percentile } from "../tests/support/stats";

const SEED_POLICY: PollPolicy = {
    initialDelayMs: 5_000, multiplier: 2, maxIntervalMs: 30_000, jitter: 0,
    timeoutMs: DEFAULT_POLL_POLICY.timeoutMs, authGraceMs: DEFAULT_POLL_POLICY.authGraceMs, requestTimeoutMs: DEFAULT_POLL_POLICY.requestTimeoutMs,
};
/** Seed 000 saw 1m35s create-to-tunnel-up; the poll starts once the instance is running, so the key lands 20-150 s into it. */
const PUBLISH_WINDOW_MS: [number, number] = [20_000, 150_000];
/** Round trip of one GET to the object store. */
const GET_LATENCY_MS = 60;
const VALID_KEY = Buffer.alloc(32, 9).toString("base64");
/** What a node publishes (lib/runtimeChannel.ts), as the poll must find it. */
const PUBLISHED = JSON.stringify({ version: RUNTIME_FORMAT_VERSION, node: "sim", instanceId: "1", wgPublicKey: VALID_KEY, certificateRequests: {} });

/** mulberry32: a small seeded PRNG, so a run can be repeated exactly. */
function prng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

async function simulate(policy: PollPolicy, publishAtMs: number, random: () => number): Promise<{ lagMs: number; gets: number }> {
    let now = 0;
    const get = async (): Promise<PollResponse> => {
        now += GET_LATENCY_MS;
        return now - GET_LATENCY_MS / 2 >= publishAtMs
            ? { status: 200, body: Buffer.from(PUBLISHED) }
            : { status: 404, body: Buffer.alloc(0), errorCode: "NoSuchKey" };
    };
    const result = await pollForPublicKey(
        { endpoint: "http://sim", region: "sim", bucket: "sim", key: "sim", node: "sim", instanceId: "1", expectedRequests: {}, nodeLabel: "sim", nodeAddress: "sim", bootstrapLogPath: "sim" },
        policy,
        { now: () => now, sleep: async (ms) => void (now += ms), random, get, log: () => undefined },
    );
    return { lagMs: now - publishAtMs, gets: result.attempts };
}

interface Summary {
    meanLagMs: number;
    p50LagMs: number;
    p95LagMs: number;
    maxLagMs: number;
    meanGets: number;
    maxGets: number;
}

function summarize(runs: { lagMs: number; gets: number }[]): Summary {
    const lags = runs.map((r) => r.lagMs).sort((a, b) => a - b);
    const gets = runs.map((r) => r.gets);
    return {
        meanLagMs: lags.reduce((a, b) => a + b, 0) / lags.length,
        p50LagMs: percentile(lags, 50),
        p95LagMs: percentile(lags, 95),
        maxLagMs: lags[lags.length - 1],
        meanGets: gets.reduce((a, b) => a + b, 0) / gets.length,
        maxGets: Math.max(...gets),
    };
}

async function main(): Promise<void> {
    const samples = Number(process.argv[2] ?? 500);
    const seed = Number(process.argv[3] ?? 20260101);
    const draw = prng(seed);
    const publishTimes = Array.from({ length: samples }, () => PUBLISH_WINDOW_MS[0] + draw() * (PUBLISH_WINDOW_MS[1] - PUBLISH_WINDOW_MS[0]));

    const policies: [string, PollPolicy][] = [["seed 000 (5s, x2, cap 30s)", SEED_POLICY], ["meshstack (2s, x1.5, cap 6s, ±20%)", DEFAULT_POLL_POLICY]];
    const results: Summary[] = [];
    for (const [, policy] of policies) {
        const jitter = prng(seed + 1);
        const runs = [];
        for (const publishAt of publishTimes) runs.push(await simulate(policy, publishAt, jitter));
        results.push(summarize(runs));
    }

    const s = (ms: number) => `${(ms / 1000).toFixed(1)}s`.padStart(7);
    console.log(`wg pubkey poll: ${samples} publish times uniform in ${PUBLISH_WINDOW_MS.map((m) => m / 1000).join("-")} s after the poll starts, seed ${seed}, GET latency ${GET_LATENCY_MS} ms (simulated clock)`);
    console.log(`${"policy".padEnd(36)} ${"lag mean".padStart(8)} ${"p50".padStart(7)} ${"p95".padStart(7)} ${"max".padStart(7)} ${"GETs mean".padStart(9)} ${"max".padStart(4)}`);
    policies.forEach(([name], i) => {
        const r = results[i];
        console.log(`${name.padEnd(36)} ${s(r.meanLagMs).padStart(8)} ${s(r.p50LagMs)} ${s(r.p95LagMs)} ${s(r.maxLagMs)} ${r.meanGets.toFixed(1).padStart(9)} ${String(r.maxGets).padStart(4)}`);
    });
    const [seedResult, ours] = results;
    console.log(
        `ratio seed/meshstack: mean lag ${(seedResult.meanLagMs / ours.meanLagMs).toFixed(1)}x, p95 lag ${(seedResult.p95LagMs / ours.p95LagMs).toFixed(1)}x, ` +
            `GETs ${(seedResult.meanGets / ours.meanGets).toFixed(2)}x (meshstack spends ${(ours.meanGets - seedResult.meanGets).toFixed(1)} more GETs ` +
            `to return ${((seedResult.meanLagMs - ours.meanLagMs) / 1000).toFixed(1)} s sooner on average)`,
    );
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
