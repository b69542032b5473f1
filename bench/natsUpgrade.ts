/**
 * The nats-server rolling upgrade on a real 3-node loopback cluster (the
 * rig the agents' upgrade test runs on, tests/support/natsUpgradeRig.ts),
 * under a write to an R3 stream every 100 ms from start to end:
 * - upgrade: the agent-driven roll OLDER -> NEWER one node at a time, then
 *   NEWER -> OLDER (6 node moves). A move's roll time runs from its desired
 *   state being written to the deploy's own wait (waitForNatsServerUpgrade)
 *   reading the node's healthy report; the agent runs at once, so the
 *   timer's interval (up to AGENT_INTERVAL_SECONDS on a node) is not in it;
 * - baseline, same run, same cluster: each node restarted in turn by its own
 *   restart script (lame duck, then the same binary again: what `systemctl
 *   restart nats-server` does), until its /healthz answers 200 again (the
 *   agent's own test: JetStream meta and every stream on it current), two
 *   rounds (6 restarts). One round runs before each roll, so both versions
 *   and the host's load drift are in both.
 * For each move: its roll time and the longest write gap overlapping it;
 * then p50 (median) and max of each, baseline beside upgrade, and the
 * writes acknowledged, failed and lost (every acknowledged write read back
 * from the stream). Exits 1 if an acknowledged write is lost; the speed
 * figures are printed, never judged.
 *
 * The next move starts once a write has been acknowledged after the last
 * one ended, so no gap overlaps two moves and each is counted once, in the
 * move it began in. A write whose acknowledgement went down with a
 * server's connection waits out WRITE_TIMEOUT_MS, so a gap a little over
 * that is one such write, not the cluster refusing writes for that long.
 *
 * Run: npx ts-node --transpile-only bench/natsUpgrade.ts
 * (with ~/.cache/meshstack/tools/bin on PATH, as scripts/bench.sh sets it)
 */
import * as os from "os";
import { jetstreamManager } from "@nats-io/jetstream";
import { NATS_SERVER_MOVE_LIMITS } from "../cloudinit/agent";
import { waitFor } from "../tests/support/ports";
import { median } from "../tests/support/stats";
import { NatsUpgradeRig, NEWER, OLDER, WRITE_INTERVAL_MS, WRITE_TIMEOUT_MS, Writer } from "../tests/support/natsUpgradeRig";

const STREAM = "BENCH";
const BASELINE_POLL_MS = 100;
const SETTLE_TIMEOUT_MS = 60_000;

interface NodeMove {
    kind: "baseline" | "upgrade";
    what: string;
    node: string;
    from: number;
    to: number;
    /** Upgrade moves only: when the agent's run ended, before the deploy's wait saw its report. */
    agentDone?: number;
}

const ms = (value: number) => `${value.toFixed(0)} ms`.padStart(9);
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(" ");

/** Until a write is acknowledged after `since`: the gap a move opened has closed before the next move starts. */
async function settled(writer: Writer, since: number): Promise<void> {
    await waitFor("a write acknowledged after the last move", async () => (writer.acked.at(-1)?.at ?? 0) > since, SETTLE_TIMEOUT_MS, WRITE_INTERVAL_MS / 4);
}

async function restartRound(rig: NatsUpgradeRig, writer: Writer, round: number, version: string, moves: NodeMove[]): Promise<void> {
    for (const member of rig.members) {
        await settled(writer, moves.at(-1)?.to ?? 0);
        const from = Date.now();
        await rig.restart(member);
        await waitFor(`${member.node.hostname} healthy after its restart`, () => rig.healthy(member), NATS_SERVER_MOVE_LIMITS.healthySeconds * 1000, BASELINE_POLL_MS);
        moves.push({ kind: "baseline", what: `restart ${round} (${version})`, node: member.node.hostname, from, to: Date.now() });
    }
}

async function roll(rig: NatsUpgradeRig, writer: Writer, fromVersion: string, toVersion: string, moves: NodeMove[]): Promise<void> {
    const release = rig.release(toVersion);
    for (const member of rig.members) {
        await settled(writer, moves.at(-1)?.to ?? 0);
        const from = Date.now();
        const { waited } = await rig.move(member, release);
        const agentDone = Date.now();
        await waited;
        moves.push({ kind: "upgrade", what: `${fromVersion} -> ${toVersion}`, node: member.node.hostname, from, to: Date.now(), agentDone });
    }
}

function report(moves: NodeMove[], writer: Writer): void {
    console.log(`\n${"move".padEnd(30)} ${"node".padEnd(18)} ${"roll".padStart(9)} ${"agent run".padStart(9)} ${"write gap".padStart(9)}`);
    for (const move of moves) {
        const agentRun = move.agentDone === undefined ? "".padStart(9) : ms(move.agentDone - move.from);
        console.log(`${`${move.kind}: ${move.what}`.padEnd(30)} ${move.node.padEnd(18)} ${ms(move.to - move.from)} ${agentRun} ${ms(writer.longestGap(move.from, move.to))}`);
    }
    console.log(`\n${"".padEnd(30)} ${"moves".padStart(5)} ${"roll p50".padStart(9)} ${"roll max".padStart(9)} ${"gap p50".padStart(9)} ${"gap max".padStart(9)}`);
    const figures = (kind: NodeMove["kind"]) => {
        const of = moves.filter((m) => m.kind === kind);
        const roll = of.map((m) => m.to - m.from);
        const gap = of.map((m) => writer.longestGap(m.from, m.to));
        return { count: of.length, rollP50: median(roll), rollMax: Math.max(...roll), gapP50: median(gap), gapMax: Math.max(...gap) };
    };
    const baseline = figures("baseline");
    const upgrade = figures("upgrade");
    for (const [label, f] of [["baseline: restart in place", baseline], ["upgrade: agent roll", upgrade]] as const) {
        console.log(`${label.padEnd(30)} ${String(f.count).padStart(5)} ${ms(f.rollP50)} ${ms(f.rollMax)} ${ms(f.gapP50)} ${ms(f.gapMax)}`);
    }
    const ratio = (a: number, b: number) => `${(a / b).toFixed(1)}x`.padStart(9);
    console.log(`${"upgrade / baseline".padEnd(30)} ${"".padStart(5)} ${ratio(upgrade.rollP50, baseline.rollP50)} ${ratio(upgrade.rollMax, baseline.rollMax)} ${ratio(upgrade.gapP50, baseline.gapP50)} ${ratio(upgrade.gapMax, baseline.gapMax)}`);
}

async function main(): Promise<void> {
    console.log(`nats-server rolling upgrade bench: 3 nodes on loopback, ${OLDER} <-> ${NEWER}, an R3 write every ${WRITE_INTERVAL_MS} ms (acknowledged within ${WRITE_TIMEOUT_MS} ms or failed); load average ${load()}`);
    const rig = await NatsUpgradeRig.start();
    try {
        for (const member of rig.members) await rig.install(member, rig.release(OLDER));
        await rig.startServers();
        const connection = await rig.connect();
        const jsm = await jetstreamManager(connection, { timeout: 5000 });
        await jsm.streams.add({ name: STREAM, subjects: ["bench.>"], num_replicas: 3 });
        const writer = new Writer(connection, "bench");
        const moves: NodeMove[] = [];
        writer.start();
        try {
            await restartRound(rig, writer, 1, OLDER, moves);
            await roll(rig, writer, OLDER, NEWER, moves);
            await restartRound(rig, writer, 2, NEWER, moves);
            await roll(rig, writer, NEWER, OLDER, moves);
            await settled(writer, moves.at(-1)!.to);
        } finally {
            await writer.stop();
        }
        report(moves, writer);
        const lost = await writer.lost(jsm, STREAM);
        console.log(`\nwrites: ${writer.acked.length} acknowledged, ${writer.failed} failed (timed out or refused while leaders moved), ${lost.length} lost; load average ${load()}`);
        if (lost.length > 0) {
            console.error(`acknowledged writes missing from stream ${STREAM}: sequences ${lost.join(", ")}`);
            process.exitCode = 1;
        }
    } finally {
        await rig.stop();
    }
}

main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
});
