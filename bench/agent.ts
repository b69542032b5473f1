/**
 * What the node agent costs a node (cloudinit/agent.ts), run as the timer
 * runs it against MinIO on loopback:
 * - an unchanged run (one signed GET, a digest compare): what every node
 *   pays every AGENT_INTERVAL_SECONDS, against the baseline of the bare
 *   signed GET by curl with the same credentials file;
 * - a changed run (GET, verify and render in python, install): what a
 *   `pulumi up` that changes the node's peers costs it once.
 *
 * Run: npx ts-node --transpile-only bench/agent.ts [runs]
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { AGENT_CREDENTIALS_PATH, AGENT_INTERVAL_SECONDS } from "../cloudinit/agent";
import { hubInterfaceSection } from "../cloudinit/wgCache";
import { RUNTIME_FORMAT_VERSION } from "../lib/runtimeChannel";
import { agentNode } from "../tests/support/agentNode";
import { MinioServer } from "../tests/support/minio";

const RUNS = Number(process.argv[2] ?? 20);
const BUCKET = "bench-agent";
const KEY = "desired/bench/wg-cache.json";

function stateWith(peerCount: number, salt: number): string {
    const peers = Array.from({ length: peerCount }, (_, i) => ({
        name: `peer-${i}`, publicKey: Buffer.alloc(32, (i + salt) % 255 + 1).toString("base64"), endpoint: `203.0.113.${10 + i}:51820`, allowedIps: [`10.44.0.${10 + i}/32`], keepaliveSeconds: 25,
    }));
    return JSON.stringify({ version: RUNTIME_FORMAT_VERSION, node: "wg-cache", instanceId: "100", wireguard: { peers } });
}

function timed(run: () => { status: number | null; stderr: string }): number {
    const start = process.hrtime.bigint();
    const result = run();
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (result.status !== 0) throw new Error(`run failed (${result.status}): ${result.stderr}`);
    return ms;
}

function summary(label: string, samples: number[]): string {
    const sorted = [...samples].sort((a, b) => a - b);
    return `${label.padEnd(46)} runs=${samples.length}  min=${sorted[0].toFixed(0)} ms  median=${sorted[Math.floor(sorted.length / 2)].toFixed(0)} ms  max=${sorted[sorted.length - 1].toFixed(0)} ms`;
}

async function main(): Promise<void> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-bench-agent-"));
    const minio = await MinioServer.start();
    try {
        await minio.createBucket(BUCKET);
        const node = agentNode(dir, {
            node: "wg-cache", endpoint: minio.endpoint, region: minio.region, bucket: BUCKET, key: KEY, wgAddress: "10.44.0.1/24", wgListenPort: 51820,
            interfaceSection: hubInterfaceSection({ address: "10.44.0.1/24", listenPort: 51820, subnet: "10.44.0.0/24" }),
        }, { credentials: minio.credentials, instanceId: "100", routePassword: "unusedByTheHub0123456789" });
        await minio.putObject(BUCKET, KEY, stateWith(8, 0));
        timed(node.run);

        const bareGet = () => spawnSync("curl", ["-sS", "--aws-sigv4", `aws:amz:${minio.region}:s3`, "-K", path.join(node.root, AGENT_CREDENTIALS_PATH), "-o", "/dev/null", `${minio.endpoint}/${BUCKET}/${KEY}`], { encoding: "utf8" });
        const baseline = Array.from({ length: RUNS }, () => timed(bareGet));
        const unchanged = Array.from({ length: RUNS }, () => timed(node.run));
        const changed: number[] = [];
        for (let i = 1; i <= RUNS; i++) {
            await minio.putObject(BUCKET, KEY, stateWith(8, i));
            changed.push(timed(node.run));
        }
        const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
        console.log(`node agent on loopback MinIO, a hub with 8 peers, timer every ${AGENT_INTERVAL_SECONDS} s (${3600 / AGENT_INTERVAL_SECONDS} GETs per node per hour)`);
        console.log(summary("baseline: bare signed GET (curl --aws-sigv4)", baseline));
        console.log(summary("agent run, document unchanged", unchanged));
        console.log(summary("agent run, document changed (render, install)", changed));
        console.log(`unchanged run / bare GET: ${(median(unchanged) / median(baseline)).toFixed(1)}x; ` +
            `while nothing changes, the agent is running ${((median(unchanged) / (AGENT_INTERVAL_SECONDS * 1000)) * 100).toFixed(2)}% of the time`);
    } finally {
        await minio.stop();
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
