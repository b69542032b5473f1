import * as assert from "assert";
import {
    NATS_SERVER_UPGRADE_POLL_INTERVAL_MS, natsServerUpgradeWaitProvider, NatsServerUpgradeOutputs, ReportResponse, waitForNatsServerUpgrade,
} from "../../providers/natsServerUpgradeWait";
import { NATS_SERVER_RELEASE, NatsServerReport } from "../../lib/natsRelease";
import { fakeClock, NO_REPORT_YET } from "../support/fakeClock";

const NEXT = { ...NATS_SERVER_RELEASE, version: "v2.14.8", sha256: { amd64: "a".repeat(64), arm64: "b".repeat(64) } };
const TARGET = { endpoint: "https://store.invalid", region: "us-east-1", bucket: "rt", stack: "dev", node: "meshstack-dev-nats-1", instanceId: "101", release: NEXT, deadlineSeconds: 60 };
const HEALTHY_BEFORE: NatsServerReport = { version: 1, node: TARGET.node, instanceId: "101", natsServer: NATS_SERVER_RELEASE.version, healthy: true };

/** A store on a fake clock: from each time (ms) on, it holds that report. */
function fakeStore(timeline: [number, NatsServerReport | string | undefined][]) {
    const clock = fakeClock();
    const deps = {
        now: clock.now,
        sleep: clock.sleep,
        get: async (): Promise<ReportResponse> => {
            const report = timeline.filter(([at]) => clock.now() >= at).at(-1)?.[1];
            if (report === undefined) return NO_REPORT_YET;
            return { status: 200, body: Buffer.from(typeof report === "string" ? report : JSON.stringify(report)) };
        },
        log: clock.log,
    };
    return { deps, lines: clock.lines, sleeps: clock.sleeps };
}

describe("nats-server upgrade wait: one node's report", () => {
    it("ends when the node reports the new version healthy, with a progress line per poll naming what it saw", async () => {
        const { deps, lines } = fakeStore([[0, HEALTHY_BEFORE], [42_000, { ...HEALTHY_BEFORE, natsServer: "v2.14.8" }]]);
        assert.deepStrictEqual(await waitForNatsServerUpgrade(TARGET, deps), { waitedMs: 45_000 });
        assert.strictEqual(lines[0], `meshstack-dev-nats-1: waiting for nats-server v2.14.8 healthy (the node reports "${NATS_SERVER_RELEASE.version}" healthy); giving up in 60.0s`);
        assert.strictEqual(lines.at(-1), "meshstack-dev-nats-1: nats-server v2.14.8 healthy (45.0s); the next node may move");
    });

    it("polls on a condition, never sleeping longer than the poll interval", async () => {
        const { deps, sleeps } = fakeStore([[30_000, { ...HEALTHY_BEFORE, natsServer: "v2.14.8" }]]);
        await waitForNatsServerUpgrade(TARGET, deps);
        assert.ok(sleeps.length > 1 && sleeps.every((ms) => ms <= NATS_SERVER_UPGRADE_POLL_INTERVAL_MS), JSON.stringify(sleeps));
    });

    it("ends at once when the node already reports the release healthy (a release it ran before, or only the mirror changed)", async () => {
        const { deps, sleeps } = fakeStore([[0, { ...HEALTHY_BEFORE, natsServer: "v2.14.8" }]]);
        assert.deepStrictEqual(await waitForNatsServerUpgrade(TARGET, deps), { waitedMs: 0 });
        assert.deepStrictEqual(sleeps, []);
    });

    it("fails the `up` when the node reports the release failed, naming the node, the version it is back on, why, and its agent's log", async () => {
        const failed = { version: 1 as const, node: TARGET.node, instanceId: "101", natsServer: NATS_SERVER_RELEASE.version, failed: "v2.14.8", reason: "the nats-server v2.14.8 tarball for amd64 does not match its sha256 aaaa" };
        const { deps } = fakeStore([[0, HEALTHY_BEFORE], [20_000, failed]]);
        await assert.rejects(waitForNatsServerUpgrade(TARGET, deps), (err: Error) => {
            assert.match(err.message, new RegExp(`^meshstack-dev-nats-1 could not move to nats-server v2\\.14\\.8: the nats-server v2\\.14\\.8 tarball for amd64 does not match its sha256 aaaa\\. It runs ${NATS_SERVER_RELEASE.version.replace(/\./g, "\\.")} again\\.`));
            assert.match(err.message, /The roll stops here: the NATS nodes after it keep their release\. Details in meshstack-dev-nats-1's agent log, \/var\/log\/meshstack-agent\.log\./);
            assert.match(err.message, /does not try v2\.14\.8 again by itself/);
            return true;
        });
    });

    it("fails the `up` at the deadline, naming the node and the last report it saw", async () => {
        const { deps } = fakeStore([[0, HEALTHY_BEFORE]]);
        await assert.rejects(waitForNatsServerUpgrade(TARGET, deps),
            new RegExp(`^Error: meshstack-dev-nats-1 did not report nats-server v2\\.14\\.8 healthy within 60\\.0s \\(last seen: the node reports "${NATS_SERVER_RELEASE.version.replace(/\./g, "\\.")}" healthy\\)\\. The roll stops here`));
    });

    const notYet: [string, NatsServerReport | string][] = [
        ["another instance's report (the node's predecessor)", { ...HEALTHY_BEFORE, instanceId: "99", natsServer: "v2.14.8" }],
        ["another node's report", { ...HEALTHY_BEFORE, node: "meshstack-dev-nats-0", natsServer: "v2.14.8" }],
        ["the new version, not healthy", { ...HEALTHY_BEFORE, natsServer: "v2.14.8", healthy: false }],
        ["an older release's failure", { ...HEALTHY_BEFORE, failed: "v2.14.9", reason: "x" }],
        ["a half-written report", "{\"version\":1,"],
    ];
    for (const [what, report] of notYet) {
        it(`does not count ${what}`, async () => {
            const { deps } = fakeStore([[0, report]]);
            await assert.rejects(waitForNatsServerUpgrade({ ...TARGET, deadlineSeconds: 5 }, deps), /did not report nats-server v2\.14\.8 healthy within 5\.0s/);
        });
    }
});

describe("nats-server upgrade wait: when it waits", () => {
    const OLDS: NatsServerUpgradeOutputs = { ...TARGET, release: NATS_SERVER_RELEASE, waitedMs: 0 };
    const NEWS = { ...TARGET, release: NATS_SERVER_RELEASE, accessKeyId: "deploy", secretAccessKey: "secret" };

    it("is the same when nothing changed: it delays nothing", async () => {
        assert.strictEqual((await natsServerUpgradeWaitProvider.diff!("id", OLDS, NEWS)).changes, false);
    });

    it("updates in place for another version, URL or checksum of the same instance: that update is the wait", async () => {
        for (const release of [NEXT, { ...NATS_SERVER_RELEASE, urlTemplate: "https://mirror.example.net/{version}/{arch}.tar.gz" }, { ...NATS_SERVER_RELEASE, sha256: { ...NATS_SERVER_RELEASE.sha256, arm64: "c".repeat(64) } }]) {
            const diff = (await natsServerUpgradeWaitProvider.diff!("id", OLDS, { ...NEWS, release })) as { changes?: boolean; diffs?: string[]; replaces?: string[] };
            assert.deepStrictEqual([diff.changes, diff.diffs, diff.replaces], [true, ["release"], []]);
        }
    });

    it("is replaced for another instance, and a create waits for nothing: a new instance installs the release at its first apply", async () => {
        const diff = await natsServerUpgradeWaitProvider.diff!("id", OLDS, { ...NEWS, release: NEXT, instanceId: "102" });
        assert.deepStrictEqual(diff.replaces, ["instanceId"]);
        const created = await natsServerUpgradeWaitProvider.create!({ ...NEWS, release: NEXT, instanceId: "102" });
        assert.strictEqual(created.outs!.waitedMs, 0);
        assert.ok(!("accessKeyId" in created.outs!) && !("secretAccessKey" in created.outs!), "the deploy's key is not kept in its state");
    });

    it("an update that changes only the deadline waits for nothing and keeps the last wait's time", async () => {
        const updated = await natsServerUpgradeWaitProvider.update!("id", { ...OLDS, waitedMs: 41_000 }, { ...NEWS, deadlineSeconds: 120 });
        assert.deepStrictEqual([updated.outs!.waitedMs, updated.outs!.deadlineSeconds], [41_000, 120]);
    });

    it("refuses a version that is not a release tag and an empty node, naming each", async () => {
        const checked = await natsServerUpgradeWaitProvider.check!({} as never, { ...NEWS, node: "", release: { ...NEXT, version: "latest" } });
        assert.deepStrictEqual(checked.failures!.map((f) => f.property), ["node", "release.version"]);
    });
});
