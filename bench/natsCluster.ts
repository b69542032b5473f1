/**
 * NATS cluster timings on loopback, with the configs and certificates the
 * nodes get (tests/support/natsCluster.ts):
 * - formation: servers started -> every route up and a JetStream meta
 *   leader, against the baseline of one server answering its readiness probe;
 * - failover: the KV stream leader stopped -> the next acknowledged KV put,
 *   graceful (SIGTERM: the leader hands over) and crash (SIGKILL: RAFT's
 *   election timeout is the floor), against the baseline of a put with all
 *   three servers up.
 *
 * A put still in flight to the old leader waits out its 1 s request
 * timeout, so a graceful figure is either a few ms or about 1 s.
 *
 * Run: npx ts-node --transpile-only bench/natsCluster.ts [runs]
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { LoopbackNatsCluster } from "../tests/support/natsCluster";
import { waitFor } from "../tests/support/ports";
import { percentile } from "../tests/support/stats";

const RUNS = Number(process.argv[2] ?? 3);
const BUCKET = "bench";

function summary(label: string, samples: number[]): string {
    return `${label.padEnd(44)} runs=${samples.length}  min=${Math.min(...samples).toFixed(0)} ms  median=${percentile(samples, 50).toFixed(0)} ms  max=${Math.max(...samples).toFixed(0)} ms`;
}

async function formation(): Promise<{ ready: number; formed: number }> {
    const cluster = await LoopbackNatsCluster.create();
    try {
        const started = performance.now();
        cluster.memberIndexes.forEach((i) => cluster.start(i));
        await waitFor("node 0 readiness", async () => (await cluster.monitor(0, "/healthz?js-server-only=true")).ok, 30_000, 10);
        const ready = performance.now() - started;
        await cluster.waitFormed(cluster.memberIndexes, 60_000);
        return { ready, formed: performance.now() - started };
    } finally {
        await cluster.destroy();
    }
}

async function failovers(signal: NodeJS.Signals, runs: number, cluster: LoopbackNatsCluster): Promise<number[]> {
    const nc = await connect({
        servers: cluster.clientUrls(), timeout: 3000, reconnectTimeWait: 100, maxReconnectAttempts: -1,
        tls: { ca: cluster.clientCa.certPem, cert: cluster.client.certPem, key: cluster.client.keyPem, servername: cluster.serviceName },
    });
    try {
        const kv = await new Kvm(jetstream(nc, { timeout: 1000 })).open(BUCKET);
        const jsm = await jetstreamManager(nc, { timeout: 3000 });
        const samples: number[] = [];
        for (let run = 0; run < runs; run++) {
            const leaderName = (await jsm.streams.info(`KV_${BUCKET}`)).cluster!.leader!;
            const leader = cluster.memberIndexes.find((i) => cluster.node(i).hostname === leaderName)!;
            const stopped = performance.now();
            const stopping = cluster.stop(leader, signal);
            let attempts = 0;
            for (;;) {
                attempts++;
                try {
                    await kv.put("failover", `${signal}-${run}`);
                    break;
                } catch {
                    if (performance.now() - stopped > 60_000) throw new Error(`no successful put within 60 s after ${signal}`);
                    // Refusals come back at once while there is no leader; 20 ms keeps the loop off the CPU the servers need.
                    await new Promise((resolve) => setTimeout(resolve, 20));
                }
            }
            samples.push(performance.now() - stopped);
            await stopping;
            cluster.start(leader);
            await cluster.waitFormed(cluster.memberIndexes, 60_000);
            await waitFor("replicas current again", async () => {
                const info = await jsm.streams.info(`KV_${BUCKET}`);
                return !!info.cluster?.leader && info.cluster.replicas?.filter((r) => r.current).length === 2;
            }, 60_000, 100);
            console.log(`  ${signal} run ${run + 1}: ${samples[run].toFixed(0)} ms to the next acknowledged put (${attempts} attempts)`);
        }
        return samples;
    } finally {
        await nc.close();
    }
}

async function steadyPuts(cluster: LoopbackNatsCluster, count: number): Promise<number[]> {
    const nc = await connect({
        servers: cluster.clientUrls(), timeout: 3000,
        tls: { ca: cluster.clientCa.certPem, cert: cluster.client.certPem, key: cluster.client.keyPem, servername: cluster.serviceName },
    });
    try {
        const kv = await new Kvm(jetstream(nc, { timeout: 3000 })).create(BUCKET, { replicas: 3 });
        const samples: number[] = [];
        for (let i = 0; i < count; i++) {
            const t = performance.now();
            await kv.put("steady", String(i));
            samples.push(performance.now() - t);
        }
        return samples;
    } finally {
        await nc.close();
    }
}

async function main(): Promise<void> {
    console.log(`NATS cluster bench: ${RUNS} runs each, 3 servers on loopback`);
    const ready: number[] = [];
    const formed: number[] = [];
    for (let run = 0; run < RUNS; run++) {
        const result = await formation();
        ready.push(result.ready);
        formed.push(result.formed);
    }

    const cluster = await LoopbackNatsCluster.create();
    try {
        await cluster.startAll();
        const steady = await steadyPuts(cluster, 50);
        const graceful = await failovers("SIGTERM", RUNS, cluster);
        const crash = await failovers("SIGKILL", RUNS, cluster);
        console.log("");
        console.log(summary("baseline: one server ready (js-server-only)", ready));
        console.log(summary("formation: all routes + meta leader", formed));
        console.log(summary("baseline: R3 KV put, all servers up", steady));
        console.log(summary("failover: leader SIGTERM -> next put", graceful));
        console.log(summary("failover: leader SIGKILL -> next put", crash));
        const p50 = (xs: number[]) => percentile(xs, 50);
        console.log(`formation / single-server readiness: ${(p50(formed) / p50(ready)).toFixed(1)}x; crash / graceful failover: ${(p50(crash) / p50(graceful)).toFixed(1)}x`);
    } finally {
        await cluster.destroy();
    }
}

main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
});
