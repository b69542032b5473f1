import * as assert from "assert";
import {
    BootstrapObjectCleanupInputs,
    CleanupDeps,
    DeleteReport,
    PUBLICATION_CHECK_INTERVAL_MS,
    PUBLICATION_PROGRESS_INTERVAL_MS,
    runCleanup,
} from "../../providers/bootstrapObject";
import { S3Response } from "../../providers/s3";

const INPUTS: BootstrapObjectCleanupInputs = {
    endpoint: "https://us-east-1.linodeobjects.com",
    region: "us-east-1",
    bucket: "meshstack-dev-store-abc123",
    key: "bootstrap/dev/nats-0/gen1-0123456789abcdef.cloud-config",
    accessKeyId: "AKIDEXAMPLE",
    secretAccessKey: "not-for-the-log",
    stored: true,
    instanceId: "4711",
    publishedBucket: "meshstack-dev-store-rt-abc123",
    publishedKey: "published/dev/meshstack-dev-0/gen1.json",
    deadlineSeconds: 480,
};

const document = (instanceId: string) => ({ status: 200, body: Buffer.from(JSON.stringify({ version: 1, node: "meshstack-dev-0", instanceId, wgPublicKey: "k" })) });
const notFound: S3Response = { status: 404, errorCode: "NoSuchKey", body: Buffer.alloc(0) };

/**
 * A fake clock: sleep advances time at once, and every GET answers from a
 * schedule by the time it is made. Records what the cleanup did and when.
 */
/** A wall clock far from zero, so a sum and a difference of two readings differ. */
const EPOCH_MS = Date.parse("2026-12-06T08:00:00Z");

/** `answerAt` gets the time since the cleanup started and the GET's number (0 first). */
function fakeRun(answerAt: (ms: number, call: number) => S3Response | Error, deleteReport: DeleteReport = { outcome: "deleted", detail: "s3://b/k deleted" }) {
    let now = EPOCH_MS;
    const gets: number[] = [];
    const requestTimeouts: number[] = [];
    const sleeps: number[] = [];
    const logs: string[] = [];
    let deletedAt: number | undefined;
    const deps: CleanupDeps = {
        now: () => now,
        sleep: async (ms) => {
            sleeps.push(ms);
            now += ms;
        },
        get: async (timeoutMs) => {
            requestTimeouts.push(timeoutMs);
            const answer = answerAt(now - EPOCH_MS, gets.length);
            gets.push(now - EPOCH_MS);
            if (answer instanceof Error) throw answer;
            return answer as S3Response;
        },
        log: (line) => logs.push(line),
        deleteObject: async () => {
            deletedAt = now - EPOCH_MS;
            return deleteReport;
        },
    };
    return { deps, gets, sleeps, logs, requestTimeouts, deletedAt: () => deletedAt };
}

describe("BootstrapObjectCleanup: delete on the node's publication, at the deadline otherwise (fake clock)", () => {
    it("deletes within one check interval of the node publishing, long before the deadline", async () => {
        const publishedAt = 95_000;
        const run = fakeRun((ms) => (ms >= publishedAt ? document("4711") : notFound));
        const outs = await runCleanup(INPUTS, run.deps);
        assert.deepStrictEqual([outs.outcome, outs.deletedOn], ["deleted", "published"]);
        assert.ok(run.deletedAt()! >= publishedAt && run.deletedAt()! < publishedAt + PUBLICATION_CHECK_INTERVAL_MS, `deleted at ${run.deletedAt()} ms`);
        assert.match(run.logs.at(-1)!, new RegExp(`^bootstrap cleanup deleted \\(instance 4711 published after ${(run.deletedAt()! / 1000).toFixed(1)}s\\): s3://b/k deleted$`));
    });

    it("waits for this instance's document: a predecessor's under the same key is not the proof", async () => {
        const run = fakeRun((ms) => (ms < 60_000 ? document("4710") : document("4711")));
        const outs = await runCleanup(INPUTS, run.deps);
        assert.strictEqual(outs.deletedOn, "published");
        assert.ok(run.deletedAt()! >= 60_000, `deleted at ${run.deletedAt()} ms, while only the predecessor had published`);
    });

    it("deletes at the deadline when the node never publishes, and says so", async () => {
        const run = fakeRun(() => notFound);
        const outs = await runCleanup(INPUTS, run.deps);
        assert.deepStrictEqual([outs.outcome, outs.deletedOn, run.deletedAt()], ["deleted", "deadline", INPUTS.deadlineSeconds * 1000]);
        assert.match(run.logs.at(-1)!, /instance 4711 did not publish within 480s \(last: HTTP 404 NoSuchKey\)/);
    });

    it("takes 403 and network errors for 'not yet': the delete still runs, at the deadline", async () => {
        const run = fakeRun((_ms, call) => (call % 2 === 1 ? { status: 403, errorCode: "AccessDenied", body: Buffer.alloc(0) } : new Error("ECONNRESET")));
        const outs = await runCleanup({ ...INPUTS, deadlineSeconds: 30 }, run.deps);
        assert.deepStrictEqual([outs.deletedOn, run.deletedAt()], ["deadline", 30_000]);
        assert.match(run.logs.at(-1)!, /did not publish within 30s \(last: network error \(ECONNRESET\)\)/);
    });

    it("takes a partial (non-JSON) document for 'not yet'", async () => {
        const run = fakeRun((ms) => (ms < 9_000 ? { status: 200, body: Buffer.from('{"version":1,"ins') } : document("4711")));
        const outs = await runCleanup(INPUTS, run.deps);
        assert.strictEqual(outs.deletedOn, "published");
        assert.ok(run.deletedAt()! >= 9_000);
    });

    it("sleeps nothing but its check interval, and never past the deadline", async () => {
        const run = fakeRun(() => notFound);
        await runCleanup({ ...INPUTS, deadlineSeconds: 10 }, run.deps);
        assert.ok(run.sleeps.every((ms) => ms > 0 && ms <= PUBLICATION_CHECK_INTERVAL_MS), `sleeps ${run.sleeps.join(", ")}`);
        assert.strictEqual(run.sleeps.reduce((a, b) => a + b, 0), 10_000);
    });

    it("prints a progress line at most every 30 s while it waits, naming the instance and the time left", async () => {
        const run = fakeRun(() => notFound);
        await runCleanup({ ...INPUTS, deadlineSeconds: 120 }, run.deps);
        const progress = run.logs.filter((l) => l.includes("has not published"));
        assert.strictEqual(progress.length, 120_000 / PUBLICATION_PROGRESS_INTERVAL_MS - 1);
        assert.match(progress[0], /instance 4711 has not published to s3:\/\/meshstack-dev-store-rt-abc123\/published\/dev\/meshstack-dev-0\/gen1\.json at https:\/\/us-east-1\.linodeobjects\.com after 30\.0s \(HTTP 404 NoSuchKey\); deleting at the latest in 90\.0s/);
    });

    it("reports a forbidden delete as the delete said, after the publication", async () => {
        const run = fakeRun(() => document("4711"), { outcome: "forbidden", detail: "s3://b/k not deleted: HTTP 403 AccessDenied" });
        const outs = await runCleanup(INPUTS, run.deps);
        assert.deepStrictEqual([outs.outcome, outs.deletedOn, outs.detail], ["forbidden", "published", "s3://b/k not deleted: HTTP 403 AccessDenied"]);
    });

    it("keeps in its state which object, for which instance, and what the delete did", async () => {
        const run = fakeRun(() => document("4711"));
        const outs = await runCleanup(INPUTS, run.deps);
        assert.deepStrictEqual(outs, {
            endpoint: INPUTS.endpoint, bucket: INPUTS.bucket, key: INPUTS.key, stored: true, instanceId: "4711",
            outcome: "deleted", detail: "s3://b/k deleted", deletedOn: "published",
        });
    });

    it("bounds each GET by 10 s, by the time left near the deadline, and by no less than 1 s", async () => {
        const run = fakeRun(() => notFound);
        await runCleanup({ ...INPUTS, deadlineSeconds: 12 }, run.deps);
        assert.deepStrictEqual(run.requestTimeouts, [10_000, 9_000, 6_000, 3_000, 1_000]);
    });

    it("neither waits nor deletes when nothing was stored", async () => {
        const run = fakeRun(() => notFound);
        const outs = await runCleanup({ ...INPUTS, stored: false }, run.deps);
        assert.deepStrictEqual([outs.outcome, run.gets.length, run.deletedAt()], ["nothing-stored", 0, undefined]);
        assert.deepStrictEqual([outs.key, outs.instanceId, outs.detail], [INPUTS.key, "4711", "user-data went inline or gzipped; nothing in the bucket"]);
    });

    it("never writes the key pair to its log or its state", async () => {
        const run = fakeRun(() => document("4711"));
        const outs = await runCleanup(INPUTS, run.deps);
        assert.ok(!JSON.stringify({ outs, logs: run.logs }).includes(INPUTS.secretAccessKey));
    });
});
