/**
 * How long the dev topology takes to come up in the box, phase by phase,
 * next to what seed 000 measured on real Linode (1m35s create-to-tunnel-up),
 * with the host memory the VMs took. Boots the box (npm run box), watches the
 * VMs over break-glass SSH while the program runs, prints the table and tears
 * the box down.
 *
 *   npx ts-node --transpile-only bench/box.ts            boot the dev stack, measure, tear down
 *   npx ts-node --transpile-only bench/box.ts --attach   measure a box someone else is bringing up
 *                                                        (e.g. npm run test:box), touching nothing
 *
 * Phases, on the box's run clock, from the VM starts (all four VMs start at once):
 * - hub key published / every node published: the key polls' ends;
 * - tunnel up: the hub's first completed WireGuard handshake;
 * - cluster formed: JetStream has a meta leader over all three servers;
 * - `up` done: the program's last step, and how long after the last publication it came.
 * Per VM: boot to cloud-init's `finished` line on the serial console.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { REPO_ROOT } from "../box/paths";
import { BoxState, readState, STATE_FILE } from "../box/state";
import { ssh } from "../box/ssh";

/** Seed 000, real Linode, one run: instance create to the operator's tunnel up. */
const SEED_CREATE_TO_TUNNEL_UP_S = 95;
const POLL_MS = 3000;

interface Sample {
    tunnelUpAtMs?: number;
    clusterFormedAtMs?: number;
    minAvailableKb: number;
    maxQemuRssKb: number;
}

function memAvailableKb(): number {
    const line = fs.readFileSync("/proc/meminfo", "utf8").split("\n").find((l) => l.startsWith("MemAvailable:"))!;
    return Number(line.split(/\s+/)[1]);
}

function qemuRssKb(): number {
    let total = 0;
    for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
        try {
            if (!fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith("qemu-system")) continue;
            const rss = fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
            total += Number(rss?.split(/\s+/)[1] ?? 0);
        } catch {
            // The process went away between listing and reading.
        }
    }
    return total;
}

async function watch(sample: Sample, t0: number, done: () => boolean): Promise<void> {
    while (!done()) {
        sample.minAvailableKb = Math.min(sample.minAvailableKb, memAvailableKb());
        sample.maxQemuRssKb = Math.max(sample.maxQemuRssKb, qemuRssKb());
        const state = fs.existsSync(STATE_FILE) ? readState() : undefined;
        const hub = state?.vms.find((vm) => vm.name.startsWith("wg-cache"));
        const nats = state?.vms.filter((vm) => vm.name.startsWith("nats-")) ?? [];
        if (state && hub && sample.tunnelUpAtMs === undefined && nats.length > 0) {
            const handshakes = await ssh(state.sshPrivateKey, hub.address, "wg show wg0 latest-handshakes", 10).catch(() => "");
            if (handshakes.split("\n").some((l) => Number(l.split(/\s+/)[1]) > 0)) sample.tunnelUpAtMs = Date.now() - t0;
        }
        if (state && nats.length === 3 && sample.clusterFormedAtMs === undefined) {
            const jsz = await ssh(state.sshPrivateKey, nats[0].address, "curl -fsS http://127.0.0.1:8222/jsz", 10).catch(() => "");
            try {
                const meta = (JSON.parse(jsz) as { meta_cluster?: { cluster_size?: number; leader?: string } }).meta_cluster;
                if (meta?.cluster_size === 3 && meta.leader) sample.clusterFormedAtMs = Date.now() - t0;
            } catch {
                // Not up yet.
            }
        }
        await new Promise((r) => setTimeout(r, POLL_MS));
    }
}

function runBox(command: "up" | "down"): Promise<number | null> {
    // `down` takes no stack: one box per machine.
    const child = spawn(path.join(REPO_ROOT, "node_modules", ".bin", "ts-node"), ["--transpile-only", path.join(REPO_ROOT, "scripts", "box.ts"), command, ...(command === "up" ? ["--stack", "dev"] : [])], {
        cwd: REPO_ROOT, stdio: ["ignore", "ignore", "inherit"],
    });
    return new Promise((resolve) => child.on("exit", resolve));
}

function bootSeconds(consoleLog: string): number | undefined {
    const text = fs.existsSync(consoleLog) ? fs.readFileSync(consoleLog, "utf8") : "";
    const match = /Cloud-init v\. \S+ finished at .* Up ([0-9.]+) seconds/.exec(text);
    return match ? Number(match[1]) : undefined;
}

const fmt = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? "n/a" : `${Math.floor(ms / 60_000)}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, "0")}s`);

async function main(): Promise<void> {
    const attach = process.argv.includes("--attach");
    const baselineAvailableKb = memAvailableKb();
    if (attach) {
        console.log("waiting for a box run to start ...");
        while (!fs.existsSync(STATE_FILE)) await new Promise((r) => setTimeout(r, 1000));
    }
    const t0 = attach ? Date.parse(readState()!.startedAt) : Date.now();
    const sample: Sample = { minAvailableKb: baselineAvailableKb, maxQemuRssKb: 0 };
    let finished = false;
    const watching = watch(sample, t0, () => finished);
    const code = attach ? 0 : await runBox("up");
    // The cluster may form after the program ends (without a KV nothing in it waits for NATS).
    const deadline = Date.now() + 40 * 60_000;
    const booted = (state: BoxState | undefined) => state?.vms.length === 4 && state.vms.every((vm) => bootSeconds(path.join(vm.dir, "console.log")) !== undefined);
    const upDone = (state: BoxState | undefined) => state?.finishedMs !== undefined;
    while (code === 0 && Date.now() < deadline && (sample.clusterFormedAtMs === undefined || !booted(readState()) || !upDone(readState()))) await new Promise((r) => setTimeout(r, POLL_MS));
    finished = true;
    await watching;
    const state = readState() as BoxState;
    try {
        if (code !== 0) throw new Error(`npm run box exited ${code}`);
        const at = (name: string) => state.vms.find((vm) => vm.name === name)!;
        // Everything on the box's run clock (ms since its `up` began), as VM starts and resource records are.
        const offset = Date.parse(state.startedAt) - t0;
        const onRunClock = (benchMs: number | undefined) => (benchMs === undefined ? undefined : benchMs - offset);
        const hubVm = at("wg-cache-node-instance");
        const nodeVms = state.vms.filter((vm) => !vm.retired);
        const firstStart = Math.min(...nodeVms.map((vm) => vm.startedMs));
        const lastStart = Math.max(...nodeVms.map((vm) => vm.startedMs));
        const doneAt = (name: string) => {
            const record = state.resources.find((r) => r.name === name);
            return record?.createdMs !== undefined && record.durationMs !== undefined ? record.createdMs + record.durationMs : undefined;
        };
        const published = state.resources.filter((r) => r.name.endsWith("-published")).map((r) => doneAt(r.name)).filter((ms): ms is number => ms !== undefined);
        const lastPublished = published.length > 0 ? Math.max(...published) : undefined;
        const since = (from: number, to: number | undefined) => (to === undefined ? undefined : to - from);
        const seed = fmt(SEED_CREATE_TO_TUNNEL_UP_S * 1000);
        const rows: [string, number | undefined, string][] = [
            ["VMs started (first -> last)", lastStart - firstStart, "-"],
            ["hub VM start -> hub key published", since(hubVm.startedMs, doneAt("wg-cache-node-published")), "-"],
            ["VM start (last) -> every node published", since(lastStart, lastPublished), "-"],
            ["VM start (last) -> tunnel up (first handshake at the hub)", since(lastStart, onRunClock(sample.tunnelUpAtMs)), seed],
            ["VM start (last) -> cluster formed", since(lastStart, onRunClock(sample.clusterFormedAtMs)), "-"],
            ["VM start (last) -> `up` done", since(lastStart, state.finishedMs), "-"],
            ["last node published -> `up` done", lastPublished === undefined ? undefined : since(lastPublished, state.finishedMs), "-"],
            ["box `up` in all (from its start)", state.finishedMs, "-"],
        ];
        console.log("\n| phase | box (this run, TCG, shared 2-core host) | real Linode (seed 000, create -> tunnel up) |\n|---|---|---|");
        for (const [phase, ms, seedFigure] of rows) console.log(`| ${phase} | ${fmt(ms)} | ${seedFigure} |`);
        console.log("\n| VM | created at (run clock) | boot -> cloud-init finished |\n|---|---|---|");
        for (const vm of state.vms) console.log(`| ${vm.name} | ${fmt(vm.startedMs)} | ${fmt((bootSeconds(path.join(vm.dir, "console.log")) ?? NaN) * 1000)} |`);
        console.log(`\npeak host memory taken during the run: ${((baselineAvailableKb - sample.minAvailableKb) / 1024).toFixed(0)} MiB (MemAvailable drop); QEMU RSS peak ${(sample.maxQemuRssKb / 1024).toFixed(0)} MiB for ${state.vms.length} VMs`);
    } finally {
        if (!attach) await runBox("down");
    }
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
