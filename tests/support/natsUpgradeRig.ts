/**
 * Three nats-server nodes on loopback that their agents move between real
 * releases (each on its own 127.0.1.x, the stand-in for its WireGuard
 * address), with agent roots, desired states and reports through MinIO, and
 * release tarballs from a local mirror (the two builds scripts/setup.sh
 * packs, in the release layout, and one whose binary refuses every config).
 * The agents' upgrade test and bench/natsUpgrade.ts both run on it.
 *
 * The agents run with MESHSTACK_AGENT_SKIP_SERVICES=1 (there is no systemd
 * here), and their restart is MESHSTACK_AGENT_NATS_RESTART
 * (cloudinit/agent.ts): a script that does what `systemctl restart
 * nats-server` does with the unit's settings (SIGUSR2, lame duck, up to
 * TimeoutStopSec, then a start). Everything else is the agent's own
 * procedure on the real binaries.
 */
import { execFile, execFileSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { connect } from "@nats-io/transport-node";
import { JetStreamManager, jetstream } from "@nats-io/jetstream";
import { AGENT_NATS_RESTART_ENV, AGENT_RUN_TIMEOUT_SECONDS, AgentNats, NATS_NODE_AGENT } from "../../cloudinit/agent";
import {
    NATS_CLUSTER_SECRETS_FILE, NATS_DEFAULT_JETSTREAM_LIMITS, NATS_NODE_LAYOUT, NATS_ROUTE_PASSWORD_PATH, NATS_STOP_TIMEOUT_SECONDS, NATS_SYSTEM_ACCOUNT_FILE, NATS_TLS_FILES,
    NatsLayout, natsConfPath, natsRouteAddresses, renderNatsClusterSecrets, renderNatsConf, renderNatsSystemAccount,
} from "../../cloudinit/nats";
import { natsClientCaProfile, natsClientCertProfile, natsRouteCaProfile, natsRouteCertProfile, natsServerCertProfile } from "../../cloudinit/natsCerts";
import { NATS_SERVER_RELEASE, NatsServerRelease, natsServerOffer } from "../../lib/natsRelease";
import { DesiredState, desiredStateKey, natsServerReportKey } from "../../lib/runtimeChannel";
import { natsHostname, NatsNode, natsServiceName } from "../../lib/topology";
import { waitForNatsServerUpgrade } from "../../providers/natsServerUpgradeWait";
import { presignObjectUrl, S3Location, signedObjectRequest } from "../../providers/s3";
import { AgentNode } from "./agentNode";
import { Pem, TestPki } from "./natsCluster";
import { freePort, waitFor } from "./ports";
import { RUNTIME_BUCKET, RuntimeChannel } from "./runtimeChannel";
import { previousNatsServerVersion, toolPath } from "./tools";

const run = promisify(execFile);
const STACK = "test";
const CLUSTER = "upgradetest";
const PASSWORD = "meshstackTestPassword0123456789";
export const NEWER = NATS_SERVER_RELEASE.version;
/** The older build scripts/setup.sh makes beside the pinned one. */
export const OLDER = previousNatsServerVersion();
/** A release whose binary reports its version and refuses every config, as a release that dropped a setting would. */
export const REFUSING = "v9.9.9";
export const WRITE_INTERVAL_MS = 100;
/** How long a write waits for its acknowledgement: one whose ack went down with a server's connection counts as failed only then. */
export const WRITE_TIMEOUT_MS = 3000;

export type NatsConnection = Awaited<ReturnType<typeof connect>>;

export interface Member {
    node: NatsNode;
    agent: AgentNode;
    agentNats: AgentNats;
    root: string;
    certificates: Record<string, string>;
    restart: string;
    pidFile: string;
    serverLog: string;
}

/** Writes every WRITE_INTERVAL_MS to an R3 stream and remembers what was acknowledged, and when. */
export class Writer {
    readonly acked: { seq: number; at: number; data: string }[] = [];
    failed = 0;
    private stopped = false;
    private loop?: Promise<void>;

    constructor(private readonly nc: NatsConnection, private readonly subject: string) {}

    start(): void {
        const js = jetstream(this.nc, { timeout: WRITE_TIMEOUT_MS });
        this.loop = (async () => {
            for (let n = 0; !this.stopped; n++) {
                const started = Date.now();
                const data = `write-${n}`;
                try {
                    const ack = await js.publish(`${this.subject}.${n}`, data);
                    this.acked.push({ seq: ack.seq, at: Date.now(), data });
                } catch {
                    this.failed++;
                }
                // The load's pace, not a wait for anything.
                await new Promise((resolve) => setTimeout(resolve, Math.max(0, WRITE_INTERVAL_MS - (Date.now() - started))));
            }
        })();
    }

    async stop(): Promise<void> {
        this.stopped = true;
        await this.loop;
    }

    /** The longest time without an acknowledged write that overlaps [from, to]. */
    longestGap(from: number, to: number): number {
        let longest = 0;
        for (let i = 1; i < this.acked.length; i++) {
            const [a, b] = [this.acked[i - 1].at, this.acked[i].at];
            if (b >= from && a <= to) longest = Math.max(longest, b - a);
        }
        return longest;
    }

    /** The sequence numbers of acknowledged writes that `stream` does not hold as written. */
    async lost(jsm: JetStreamManager, stream: string): Promise<number[]> {
        const lost: number[] = [];
        for (const { seq, data } of this.acked) {
            const message = await jsm.streams.getMessage(stream, { seq });
            if (message?.string() !== data) lost.push(seq);
        }
        return lost;
    }
}

export const binaryVersion = (file: string) => execFileSync(file, ["--version"]).toString().trim();

const tarballName = (version: string) => `nats-server-${version}-linux-amd64.tar.gz`;

/** What `systemctl restart nats-server` does with the unit's settings: SIGUSR2 (lame duck), up to TimeoutStopSec, then a start. */
function restartScript(binary: string, conf: string, pidFile: string, serverLog: string): string {
    return `#!/bin/bash
set -uo pipefail
alive() { local state; state=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) && [ "$state" != Z ]; }
if [ -s '${pidFile}' ] && alive "$(cat '${pidFile}')"; then
  pid=$(cat '${pidFile}')
  kill -USR2 "$pid"
  deadline=$((SECONDS + ${NATS_STOP_TIMEOUT_SECONDS}))
  while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  if alive "$pid"; then kill -KILL "$pid"; fi
fi
setsid '${binary}' -c '${conf}' </dev/null >>'${serverLog}' 2>&1 &
echo $! >'${pidFile}'
`;
}

export class NatsUpgradeRig {
    readonly members: Member[] = [];
    private readonly serviceName = natsServiceName(CLUSTER);
    private readonly pki: TestPki;
    private readonly routeCa: Pem;
    private readonly clientCa: Pem;
    private readonly client: Pem;
    private mirror?: http.Server;
    private mirrorUrl = "";
    private readonly connections: NatsConnection[] = [];

    private constructor(readonly channel: RuntimeChannel, private readonly work: string) {
        this.pki = new TestPki(path.join(work, "pki"));
        this.routeCa = this.pki.ca("route-ca", natsRouteCaProfile(CLUSTER));
        this.clientCa = this.pki.ca("client-ca", natsClientCaProfile(CLUSTER));
        this.client = this.pki.leaf("client", natsClientCertProfile("meshstack-test-client"), this.clientCa);
    }

    /** MinIO, the mirror, and three nodes after their first boot; no agent has run, no server is started. */
    static async start(): Promise<NatsUpgradeRig> {
        const channel = await RuntimeChannel.start();
        const work = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-nats-upgrade-"));
        let rig: NatsUpgradeRig | undefined;
        try {
            rig = new NatsUpgradeRig(channel, work);
            rig.fillMirror();
            await rig.startMirror();
            for (let i = 0; i < 3; i++) rig.members.push(await rig.addMember(i));
            return rig;
        } catch (err) {
            if (rig) {
                await rig.stop();
            } else {
                await channel.stop();
                fs.rmSync(work, { recursive: true, force: true });
            }
            throw err;
        }
    }

    private get mirrorDir(): string {
        return path.join(this.work, "mirror");
    }

    private sha256Of(version: string): string {
        return execFileSync("sha256sum", [path.join(this.mirrorDir, version, tarballName(version))]).toString().split(" ")[0];
    }

    release(version: string, sha256 = this.sha256Of(version)): NatsServerRelease {
        return { version, urlTemplate: `${this.mirrorUrl}/{version}/nats-server-{version}-linux-{arch}.tar.gz`, sha256: { amd64: sha256, arm64: "0".repeat(64) } };
    }

    /** The tarballs setup.sh packed, and one whose binary refuses every config. */
    private fillMirror(): void {
        const tools = path.dirname(path.dirname(toolPath("nats-server")));
        for (const version of [OLDER, NEWER]) {
            const source = path.join(tools, "mirror", "nats-server", version, tarballName(version));
            if (!fs.existsSync(source)) throw new Error(`${source} is missing; run scripts/setup.sh`);
            fs.mkdirSync(path.join(this.mirrorDir, version), { recursive: true });
            fs.copyFileSync(source, path.join(this.mirrorDir, version, tarballName(version)));
        }
        const unpacked = path.join(this.work, "refusing", `nats-server-${REFUSING}-linux-amd64`);
        fs.mkdirSync(unpacked, { recursive: true });
        fs.writeFileSync(path.join(unpacked, "nats-server"), `#!/bin/sh\n[ "$1" = --version ] && { echo "nats-server: ${REFUSING}"; exit 0; }\necho "nats.conf: unknown field" >&2\nexit 1\n`, { mode: 0o755 });
        fs.mkdirSync(path.join(this.mirrorDir, REFUSING), { recursive: true });
        execFileSync("tar", ["-czf", path.join(this.mirrorDir, REFUSING, tarballName(REFUSING)), "-C", path.dirname(unpacked), path.basename(unpacked)]);
    }

    private async startMirror(): Promise<void> {
        const mirrorDir = this.mirrorDir;
        const mirror = http.createServer((req, res) => {
            const file = path.join(mirrorDir, path.normalize(decodeURIComponent(new URL(req.url!, "http://mirror").pathname)));
            if (!file.startsWith(mirrorDir) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
                res.writeHead(404).end();
                return;
            }
            res.writeHead(200, { "content-length": fs.statSync(file).size });
            fs.createReadStream(file).pipe(res);
        });
        this.mirror = mirror;
        const port = await freePort();
        await new Promise<void>((resolve) => mirror.listen(port, "127.0.0.1", resolve));
        this.mirrorUrl = `http://127.0.0.1:${port}`;
    }

    /** A NATS node after its first boot: keys, nats.conf and the secrets from user-data, no nats-server, no certificates. */
    private async addMember(index: number): Promise<Member> {
        const node: NatsNode = {
            index, hostname: natsHostname(CLUSTER, index), wgAddress: `127.0.1.${10 + index}`,
            ports: { client: await freePort(), route: await freePort(), monitor: await freePort() },
        };
        const root = path.join(this.work, node.hostname);
        const binary = path.join(root, "usr/local/bin/nats-server");
        fs.mkdirSync(path.dirname(binary), { recursive: true });
        const agentNats: AgentNats = { ...NATS_NODE_AGENT, layout: { ...NATS_NODE_AGENT.layout, binary, user: "root", group: "root" }, monitorPort: node.ports.monitor };
        const agent = new AgentNode(root, {
            node: node.hostname, endpoint: this.channel.minio.endpoint, region: this.channel.minio.region, bucket: RUNTIME_BUCKET, key: desiredStateKey(STACK, node.hostname),
            wgAddress: `${node.wgAddress}/8`, wgListenPort: 51820, interfaceSection: "[Interface]\n", nats: agentNats,
        }, `7000${index}`, this.channel.agentCredentials);
        await agent.generateKey();
        const layout: NatsLayout = { ...agentNats.layout, configDir: root + NATS_NODE_LAYOUT.configDir, tlsDir: root + NATS_NODE_LAYOUT.tlsDir, storeDir: root + NATS_NODE_LAYOUT.storeDir };
        fs.mkdirSync(layout.tlsDir, { recursive: true });
        const route = this.pki.leaf(`${node.hostname}-route`, natsRouteCertProfile(node), this.routeCa);
        const server = this.pki.leaf(`${node.hostname}-server`, natsServerCertProfile(node, this.serviceName), this.clientCa);
        fs.writeFileSync(path.join(layout.tlsDir, NATS_TLS_FILES.routeKey), route.keyPem, { mode: 0o600 });
        fs.writeFileSync(path.join(layout.tlsDir, NATS_TLS_FILES.serverKey), server.keyPem, { mode: 0o600 });
        fs.writeFileSync(path.join(layout.configDir, NATS_CLUSTER_SECRETS_FILE), renderNatsClusterSecrets({ password: PASSWORD }), { mode: 0o600 });
        fs.writeFileSync(path.join(layout.configDir, NATS_SYSTEM_ACCOUNT_FILE), renderNatsSystemAccount({ password: PASSWORD }), { mode: 0o600 });
        fs.mkdirSync(path.dirname(root + NATS_ROUTE_PASSWORD_PATH), { recursive: true });
        fs.writeFileSync(root + NATS_ROUTE_PASSWORD_PATH, PASSWORD + "\n", { mode: 0o600 });
        const conf = natsConfPath(layout);
        fs.writeFileSync(conf, renderNatsConf({ clusterName: CLUSTER, node, layout, clientHost: node.wgAddress, jetstream: NATS_DEFAULT_JETSTREAM_LIMITS }));
        const pidFile = path.join(root, "nats-server.pid");
        const serverLog = path.join(root, "nats-server.log");
        const restart = path.join(root, "restart-nats-server");
        fs.writeFileSync(restart, restartScript(binary, conf, pidFile, serverLog), { mode: 0o755 });
        const certificates = {
            [NATS_TLS_FILES.routeCa]: this.routeCa.certPem, [NATS_TLS_FILES.routeCert]: route.certPem,
            [NATS_TLS_FILES.clientCa]: this.clientCa.certPem, [NATS_TLS_FILES.serverCert]: server.certPem,
        };
        return { node, agent, agentNats, root, certificates, restart, pidFile, serverLog };
    }

    private async desiredFor(member: Member, natsServer: NatsServerRelease, extra: Partial<DesiredState> = {}): Promise<DesiredState> {
        const report = this.reportLocation(member);
        return {
            version: 1, node: member.node.hostname, instanceId: member.agent.instanceId, wireguard: { peers: [] },
            certificates: member.certificates, natsRoutes: natsRouteAddresses(member.node, this.members.map((m) => m.node)),
            natsServer: natsServerOffer(natsServer, await presignObjectUrl(report, this.channel.minio.credentials, "PUT", 3600, new Date())),
            ...extra,
        };
    }

    reportLocation(member: Member): S3Location {
        return this.channel.minio.location(RUNTIME_BUCKET, natsServerReportKey(STACK, member.node.hostname));
    }

    private agentRun(member: Member): Promise<{ stdout: string; stderr: string }> {
        return member.agent.runOnce({
            env: { MESHSTACK_AGENT_SKIP_SERVICES: "1", [AGENT_NATS_RESTART_ENV]: member.restart }, timeoutMs: AGENT_RUN_TIMEOUT_SECONDS * 1000,
        });
    }

    /** A first install: the node's desired state names the release and its agent runs once; it reports nothing, the server is not started. */
    async install(member: Member, natsServer: NatsServerRelease): Promise<void> {
        await this.channel.write(member.agent.params.key, await this.desiredFor(member, natsServer));
        await this.agentRun(member);
    }

    /** The deploy's wait, as the upgrade wait's update runs it, against the real bucket. */
    private deployWait(member: Member, natsServer: NatsServerRelease, deadlineSeconds = 600): Promise<{ waitedMs: number }> {
        const location = this.reportLocation(member);
        return waitForNatsServerUpgrade({
            endpoint: this.channel.minio.endpoint, region: this.channel.minio.region, bucket: RUNTIME_BUCKET, stack: STACK,
            node: member.node.hostname, instanceId: member.agent.instanceId, release: natsServer, deadlineSeconds,
        }, {
            now: () => Date.now(),
            sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
            get: () => signedObjectRequest(location, this.channel.minio.credentials, "GET"),
            log: () => undefined,
        });
    }

    /** One step of the roll: the node's desired state names the release, its agent moves, the deploy's wait reads the report. */
    async move(member: Member, natsServer: NatsServerRelease, extra: Partial<DesiredState> = {}): Promise<{ waited: Promise<{ waitedMs: number }> }> {
        await this.channel.write(member.agent.params.key, await this.desiredFor(member, natsServer, extra));
        const waited = this.deployWait(member, natsServer);
        waited.catch(() => undefined);
        await this.agentRun(member);
        return { waited };
    }

    /** Runs the node's restart script: lame duck, then the binary it has, as `systemctl restart nats-server`. */
    async restart(member: Member): Promise<void> {
        await run(member.restart);
    }

    pid(member: Member): string {
        return fs.readFileSync(member.pidFile, "utf8").trim();
    }

    monitor(member: Member, what: string): Promise<Response> {
        return fetch(`http://127.0.0.1:${member.node.ports.monitor}${what}`, { signal: AbortSignal.timeout(2000) });
    }

    /** /healthz 200, the agent's own test: JetStream meta, and every stream and consumer on this server, current. */
    async healthy(member: Member): Promise<boolean> {
        return (await this.monitor(member, "/healthz")).status === 200;
    }

    async runningVersion(member: Member): Promise<string> {
        return `v${((await (await this.monitor(member, "/varz")).json()) as { version: string }).version}`;
    }

    /** Starts every installed server and waits until each is healthy. */
    async startServers(): Promise<void> {
        for (const member of this.members) await this.restart(member);
        await waitFor("every server healthy (JetStream meta current)", async () => (await Promise.all(this.members.map((m) => this.healthy(m)))).every(Boolean), 120_000, 250);
    }

    /** A client on every node's client port, closed by stop(). */
    async connect(): Promise<NatsConnection> {
        const connection = await connect({
            servers: this.members.map((m) => `tls://${m.node.wgAddress}:${m.node.ports.client}`),
            tls: { ca: this.clientCa.certPem, cert: this.client.certPem, key: this.client.keyPem, servername: this.serviceName },
            timeout: 3000, reconnectTimeWait: 200, maxReconnectAttempts: -1,
        });
        this.connections.push(connection);
        return connection;
    }

    async stop(): Promise<void> {
        for (const connection of this.connections) await connection.close().catch(() => undefined);
        for (const member of this.members) {
            if (fs.existsSync(member.pidFile)) {
                try {
                    process.kill(Number(this.pid(member)), "SIGKILL");
                } catch {
                    // already gone
                }
            }
        }
        this.mirror?.close();
        await this.channel.stop();
        fs.rmSync(this.work, { recursive: true, force: true });
    }
}
