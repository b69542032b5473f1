/**
 * Propagation through the runtime channel: time from a member publishing a
 * changed key (the RuntimeDocument update `pulumi up` makes for every
 * peer's desired state) to every agent having applied it, against a
 * baseline measured in the same run: one signed GET round trip (curl
 * --aws-sigv4, as the agent makes it) and one whole agent run on an
 * unchanged document. Also the agent's cost: GETs per node per hour,
 * counted at a TCP relay in front of MinIO (each agent run is one
 * connection, one GET), next to 3600 / interval.
 *
 * Real MinIO, real agents (the rendered script and renderer) each in a loop
 * that sleeps the interval between runs, as the systemd timer's
 * OnUnitActiveSec does. The interval is short so the bench is quick; the
 * goal scales with it: within the interval plus 2 s.
 *
 *   npx ts-node --transpile-only bench/agent.ts [agents] [rounds] [intervalSeconds]
 */
import { ChildProcess, execFile, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { AGENT_INTERVAL_SECONDS } from "../cloudinit/agent";
import { AGENT_CREDENTIALS_PATH, AGENT_ROOT_ENV, AGENT_SCRIPT_PATH, AGENT_STATE_DIR } from "../cloudinit/agent/layout";
import { INSTANCE_ID_ENV, wgInterfaceSection } from "../cloudinit/nodeBootstrap";
import { desiredStateKey, DesiredState } from "../lib/runtimeChannel";
import { AgentNode } from "../tests/support/agentNode";
import { RUNTIME_BUCKET, RuntimeChannel } from "../tests/support/runtimeChannel";
import { percentile } from "../tests/support/stats";
import { toolPath } from "../tests/support/tools";

const run = promisify(execFile);
const AGENTS = Number(process.argv[2] ?? 5);
const ROUNDS = Number(process.argv[3] ?? 8);
const INTERVAL_SECONDS = Number(process.argv[4] ?? 2);
const GOAL_SLACK_MS = 2000;

function summary(label: string, xs: number[]): string {
    const ms = (v: number) => `${v.toFixed(0)} ms`.padStart(9);
    return `${label.padEnd(52)} n=${String(xs.length).padStart(3)}  p50 ${ms(percentile(xs, 50))}  p95 ${ms(percentile(xs, 95))}  max ${ms(Math.max(...xs))}`;
}

async function main(): Promise<void> {
    const channel = await RuntimeChannel.start();
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-bench-agent-"));
    let connections = 0;
    const upstream = new URL(channel.minio.endpoint);
    const relay = net.createServer((socket) => {
        connections++;
        const to = net.connect(Number(upstream.port), upstream.hostname);
        socket.pipe(to).pipe(socket);
        socket.on("error", () => to.destroy());
        to.on("error", () => socket.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
    const endpoint = `http://127.0.0.1:${(relay.address() as net.AddressInfo).port}`;
    const loops: ChildProcess[] = [];
    try {
        const agents: AgentNode[] = [];
        for (let i = 0; i < AGENTS; i++) {
            const name = `meshstack-bench-${i}`;
            const address = `10.44.0.${10 + i}/24`;
            const agent = new AgentNode(path.join(work, name), {
                node: name, endpoint, region: channel.minio.region, bucket: RUNTIME_BUCKET, key: desiredStateKey("bench", name),
                wgAddress: address, wgListenPort: 51820, interfaceSection: wgInterfaceSection({ address, listenPort: 51820 }),
            }, `6000${i}`, channel.agentCredentials);
            await agent.generateKey();
            agents.push(agent);
        }
        const peerKeys = await Promise.all(agents.map((a) => a.publicKey()));
        const desired = (self: number): DesiredState => ({
            version: 1, node: agents[self].params.node, instanceId: agents[self].instanceId,
            wireguard: { peers: agents.map((a, i) => ({ name: a.params.node, publicKey: peerKeys[i], allowedIps: [`10.44.0.${10 + i}/32`] })).filter((_, i) => i !== self) },
        });
        for (let i = 0; i < AGENTS; i++) await channel.write(agents[i].params.key, desired(i));

        // Baselines: one signed GET as the agent makes it, and one whole agent run on a document it already applied.
        const get: number[] = [];
        const idleRun: number[] = [];
        const env = (a: AgentNode) => ({ PATH: process.env.PATH, [AGENT_ROOT_ENV]: a.root, [INSTANCE_ID_ENV]: a.instanceId, MESHSTACK_AGENT_SKIP_SERVICES: "1" });
        for (const agent of agents) await agent.runOnce({ env: env(agent) });
        for (let i = 0; i < 20; i++) {
            const agent = agents[i % AGENTS];
            let t = performance.now();
            await run(toolPath("curl"), ["-sS", "-o", "/dev/null", "--fail", "--aws-sigv4", `aws:amz:${channel.minio.region}:s3`, "-K", path.join(agent.root, AGENT_CREDENTIALS_PATH), `${endpoint}/${RUNTIME_BUCKET}/${agent.params.key}`]);
            get.push(performance.now() - t);
            t = performance.now();
            await agent.runOnce({ env: env(agent) });
            idleRun.push(performance.now() - t);
        }

        // The agents on their timer.
        const countedFrom = { connections, at: performance.now() };
        for (const agent of agents) {
            loops.push(spawn("bash", ["-c", `while :; do "$0" >/dev/null 2>&1 || true; sleep ${INTERVAL_SECONDS}; done`, path.join(agent.root, AGENT_SCRIPT_PATH)], {
                env: env(agent), stdio: "ignore", detached: true,
            }));
        }
        const appliedDigest = (a: AgentNode) => {
            try {
                return fs.readFileSync(path.join(a.root, AGENT_STATE_DIR, "applied.sha256"), "utf8").trim();
            } catch {
                return "";
            }
        };
        const propagation: number[] = [];
        const perAgent: number[] = [];
        for (let round = 0; round < ROUNDS; round++) {
            // Member `round % AGENTS` comes back with a new key: every other member's desired state changes.
            const changed = round % AGENTS;
            peerKeys[changed] = await agents[changed].generateKey();
            // Publish at a random phase of the agents' timers.
            await new Promise((r) => setTimeout(r, Math.random() * INTERVAL_SECONDS * 1000));
            const before = agents.map(appliedDigest);
            const t0 = performance.now();
            for (let i = 0; i < AGENTS; i++) if (i !== changed) await channel.write(agents[i].params.key, desired(i));
            const waiting = new Set(agents.map((_, i) => i).filter((i) => i !== changed));
            const deadline = t0 + (INTERVAL_SECONDS * 1000 + 10_000) * 3;
            while (waiting.size > 0) {
                if (performance.now() > deadline) throw new Error(`round ${round}: agents ${[...waiting].join(",")} never applied the change`);
                for (const i of [...waiting]) {
                    if (appliedDigest(agents[i]) !== before[i]) {
                        perAgent.push(performance.now() - t0);
                        waiting.delete(i);
                    }
                }
                await new Promise((r) => setTimeout(r, 10));
            }
            propagation.push(performance.now() - t0);
        }
        const seconds = (performance.now() - countedFrom.at) / 1000;
        const getsPerNodeHour = ((connections - countedFrom.connections) / AGENTS / seconds) * 3600;

        console.log(`agents: ${AGENTS}, rounds: ${ROUNDS}, bench interval: ${INTERVAL_SECONDS} s (nodes: AGENT_INTERVAL_SECONDS = ${AGENT_INTERVAL_SECONDS} s)`);
        console.log(summary("baseline: one signed GET (curl --aws-sigv4)", get));
        console.log(summary("baseline: one agent run, document unchanged", idleRun));
        console.log(summary("publish -> one agent applied", perAgent));
        console.log(summary(`publish -> all ${AGENTS - 1} peers applied`, propagation));
        const worst = Math.max(...propagation);
        console.log(`goal: all applied within interval + 2 s = ${INTERVAL_SECONDS * 1000 + GOAL_SLACK_MS} ms: ${worst <= INTERVAL_SECONDS * 1000 + GOAL_SLACK_MS ? "met" : "MISSED"} (worst ${worst.toFixed(0)} ms)`);
        console.log(`GETs per node per hour: measured ${getsPerNodeHour.toFixed(0)} at ${INTERVAL_SECONDS} s (3600/interval = ${(3600 / INTERVAL_SECONDS).toFixed(0)}); on nodes 3600/${AGENT_INTERVAL_SECONDS} = ${3600 / AGENT_INTERVAL_SECONDS}`);
    } finally {
        for (const loop of loops) if (loop.pid) process.kill(-loop.pid, "SIGKILL");
        await new Promise((resolve) => relay.close(resolve));
        await channel.stop();
        fs.rmSync(work, { recursive: true, force: true });
    }
}

main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
});
