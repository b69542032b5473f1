/**
 * The agent moving real nats-server releases on a real cluster: three
 * nats-server processes on loopback, their agents, desired states and
 * reports through MinIO, and a release mirror (the rig in
 * tests/support/natsUpgradeRig.ts, which bench/natsUpgrade.ts times too).
 *
 * - The first apply installs the desired release; the test then starts the
 *   servers.
 * - A roll under load: a client writes to an R3 stream every 100 ms while
 *   each node in turn is given the newer release, its agent moves to it and
 *   the deploy's own wait (waitForNatsServerUpgrade) reads its report before
 *   the next node is given it. No acknowledged write is lost.
 * - Failures on one node: a tarball that does not match its checksum, and a
 *   binary that refuses the node's nats.conf. The node stays on its release
 *   (never restarted), reports the failure, the wait fails naming it, and a
 *   later run does not try the same release again. Then a downgrade.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { jetstreamManager } from "@nats-io/jetstream";
import { AGENT_STATE_DIR } from "../../cloudinit/agent/layout";
import { NatsServerRelease } from "../../lib/natsRelease";
import { signedObjectRequest } from "../../providers/s3";
import { binaryVersion, Member, NEWER, NatsUpgradeRig, OLDER, REFUSING, WRITE_INTERVAL_MS, Writer } from "../support/natsUpgradeRig";

describe(`agent: nats-server moved in place on a 3-node cluster (${OLDER} -> ${NEWER} under load, failures, a downgrade)`, function () {
    this.timeout(20 * 60_000);
    let rig: NatsUpgradeRig;
    const movesLogged = (member: Member, to: string) => member.agent.log().split("\n").filter((line) => line.includes(`nats-server: moving from`) && line.endsWith(` to ${to}`)).length;

    before(async () => {
        rig = await NatsUpgradeRig.start();
    });

    after(async () => {
        await rig?.stop();
    });

    it(`the first apply installs the desired release (${OLDER}) from the mirror, checksum verified, and reports nothing: the server is not started yet`, async () => {
        for (const member of rig.members) {
            await rig.install(member, rig.release(OLDER));
            assert.match(member.agent.log(), new RegExp(`nats-server ${OLDER} installed\\n`));
            assert.strictEqual(binaryVersion(member.agentNats.layout.binary), `nats-server: ${OLDER}`);
            const report = await signedObjectRequest(rig.reportLocation(member), rig.channel.minio.credentials, "GET");
            assert.strictEqual(report.status, 404);
        }
        await rig.startServers();
    });

    it(`rolls ${OLDER} -> ${NEWER} one node at a time under a write every ${WRITE_INTERVAL_MS} ms: every node on ${NEWER}, no acknowledged write lost`, async () => {
        const connection = await rig.connect();
        const jsm = await jetstreamManager(connection, { timeout: 5000 });
        await jsm.streams.add({ name: "ROLL", subjects: ["roll.>"], num_replicas: 3 });
        const writer = new Writer(connection, "roll");
        writer.start();
        const windows: { node: string; from: number; to: number }[] = [];
        try {
            for (const member of rig.members) {
                const from = Date.now();
                const { waited } = await rig.move(member, rig.release(NEWER));
                await waited;
                windows.push({ node: member.node.hostname, from, to: Date.now() });
            }
        } finally {
            await writer.stop();
        }
        for (const member of rig.members) {
            assert.strictEqual(await rig.runningVersion(member), NEWER, member.node.hostname);
            assert.strictEqual(binaryVersion(member.agentNats.layout.binary), `nats-server: ${NEWER}`);
            assert.strictEqual(binaryVersion(`${member.agentNats.layout.binary}.previous`), `nats-server: ${OLDER}`, "the old binary is kept");
            assert.match(member.agent.log(), new RegExp(`nats-server ${NEWER} healthy \\(was ${OLDER}\\)`));
            assert.match(member.agent.log(), /reported nats-server: \{"version":1,.*"healthy":true\}/);
        }
        for (const window of windows) {
            const gap = writer.longestGap(window.from, window.to);
            console.log(`      ${window.node}: moved in ${((window.to - window.from) / 1000).toFixed(1)} s; longest write gap ${(gap / 1000).toFixed(1)} s`);
            assert.ok(writer.acked.some((a) => a.at >= window.from && a.at <= window.to), `no write was acknowledged while ${window.node} moved`);
        }
        const lost = await writer.lost(jsm, "ROLL");
        console.log(`      ${writer.acked.length} writes acknowledged, ${writer.failed} not (timed out or refused while leaders moved), ${lost.length} lost`);
        assert.deepStrictEqual(lost, [], "acknowledged writes missing from the stream");
    });

    const failures: [string, () => NatsServerRelease, RegExp][] = [
        ["a tarball that does not match its checksum", () => rig.release(OLDER, "f".repeat(64)), new RegExp(`the nats-server ${OLDER} tarball for amd64 does not match its sha256 f{64}; nothing was unpacked`)],
        ["a binary that refuses the node's nats.conf", () => rig.release(REFUSING), new RegExp(`nats-server ${REFUSING} refuses this node's nats\\.conf \\(nats-server -t; its output is in the agent log\\)`)],
    ];
    for (const [what, bad, reason] of failures) {
        it(`${what}: the node stays on ${NEWER} without a restart, reports the failure, and the deploy's wait fails naming the node, its version and why`, async () => {
            const member = rig.members[0];
            const before = rig.pid(member);
            const target = bad();
            const { waited } = await rig.move(member, target);
            await assert.rejects(waited, (err: Error) => {
                assert.match(err.message, new RegExp(`^${member.node.hostname} could not move to nats-server ${target.version}: `));
                assert.match(err.message, reason);
                assert.match(err.message, new RegExp(`It runs ${NEWER} again\\. The roll stops here`));
                return true;
            });
            assert.strictEqual(rig.pid(member), before, "nats-server was restarted");
            assert.strictEqual(await rig.runningVersion(member), NEWER);
            assert.strictEqual(binaryVersion(member.agentNats.layout.binary), `nats-server: ${NEWER}`);
            assert.ok(!fs.existsSync(`${member.agentNats.layout.binary}.new`), "a staged binary left behind");
            assert.deepStrictEqual(fs.readdirSync(path.join(member.root, AGENT_STATE_DIR)).filter((f) => f.startsWith("nats-server-release.")), [], "a staging dir left behind");
            assert.ok(!member.agent.log().includes("X-Amz-Signature"), "a presigned URL in the agent log");
        });
    }

    it("a failed release is not tried again when the desired state changes for another reason (the next test gives it another release, which is)", async () => {
        const member = rig.members[0];
        const refusing = rig.release(REFUSING);
        assert.strictEqual(movesLogged(member, REFUSING), 1);
        await rig.move(member, refusing, { authorizedKeys: [] });
        assert.strictEqual(movesLogged(member, REFUSING), 1, "the failed release was tried again");
        assert.match(member.agent.log(), new RegExp(`nats-server ${REFUSING} failed on this node before \\(see above\\); staying on ${NEWER} until the desired release changes \\(to retry it: rm .*nats-server-failed .*applied\\.sha256, then run the agent\\)`));
    });

    it(`a downgrade (${NEWER} -> ${OLDER}) is the same move: the node runs ${OLDER}, healthy, and reports it`, async () => {
        const member = rig.members[0];
        const { waited } = await rig.move(member, rig.release(OLDER));
        await waited;
        assert.strictEqual(await rig.runningVersion(member), OLDER);
        assert.strictEqual(binaryVersion(`${member.agentNats.layout.binary}.previous`), `nats-server: ${NEWER}`);
        assert.strictEqual((await rig.monitor(member, "/healthz")).status, 200);
    });
});
