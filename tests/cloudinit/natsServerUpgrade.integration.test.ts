/**
 * The agent moving real nats-server releases on a real cluster: three
 * nats-server processes on loopback (each on its own 127.0.1.x, the stand-in
 * for its WireGuard address), each with an agent root, desired states and
 * reports through MinIO, release tarballs from a local mirror (the two
 * builds scripts/setup.sh packs, in the release layout).
 *
 * - The first apply installs the desired release; the test then starts the
 *   servers (the agents run with MESHSTACK_AGENT_SKIP_SERVICES=1, there is
 *   no systemd here).
 * - A roll under load: a client writes to an R3 stream every 100 ms while
 *   each node in turn is given the newer release, its agent moves to it and
 *   the deploy's own wait (waitForNatsServerUpgrade) reads its report before
 *   the next node is given it. No acknowledged write is lost.
 * - Failures on one node: a tarball that does not match its checksum, and a
 *   binary that refuses the node's nats.conf. The node stays on its release
 *   (never restarted), reports the failure, the wait fails naming it, and a
 *   later run does not try the same release again. Then a downgrade.
 *
 * The agents' restart is MESHSTACK_AGENT_NATS_RESTART (cloudinit/agent.ts):
 * a script that does what `systemctl restart nats-server` does with the
 * unit's settings (SIGUSR2, lame duck, up to TimeoutStopSec, then a start).
 * Everything else is the agent's own procedure on the real binaries.
 */
import * as assert from "assert";
import { execFile, execFileSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { AGENT_NATS_RESTART_ENV, AGENT_RUN_TIMEOUT_SECONDS, AgentNats, NATS_NODE_AGENT } from "../../cloudinit/agent";
import { AGENT_STATE_DIR } from "../../cloudinit/agent/layout";
import {
    NATS_CLUSTER_SECRETS_FILE, NATS_DEFAULT_JETSTREAM_LIMITS, NATS_NODE_LAYOUT, NATS_ROUTE_PASSWORD_PATH, NATS_STOP_TIMEOUT_SECONDS, NATS_SYSTEM_ACCOUNT_FILE, NATS_TLS_FILES,
    NatsLayout, natsConfPath, natsRouteAddresses, renderNatsClusterSecrets, renderNatsConf, renderNatsSystemAccount,
} from "../../cloudinit/nats";
import { natsClientCaProfile, natsClientCertProfile, natsRouteCaProfile, natsRouteCertProfile, natsServerCertProfile } from "../../cloudinit/natsCerts";
import { NATS_SERVER_RELEASE, NatsServerRelease, natsServerOffer } from "../../lib/natsRelease";
import { DesiredState, desiredStateKey, natsServerReportKey } from "../../lib/runtimeChannel";
import { natsHostname, NatsNode, natsServiceName } from "../../lib/topology";
import { waitForNatsServerUpgrade } from "../../providers/natsServerUpgradeWait";
import { presignObjectUrl, signedObjectRequest } from "../../providers/s3";
import { AgentNode } from "../support/agentNode";
import { Pem, TestPki } from "../support/natsCluster";
import { freePort, waitFor } from "../support/ports";
import { RUNTIME_BUCKET, RuntimeChannel } from "../support/runtimeChannel";
import { previousNatsServerVersion, toolPath } from "../support/tools";

const run = promisify(execFile);
const STACK = "test";
const CLUSTER = "upgradetest";
const PASSWORD = "meshstackTestPassword0123456789";
const NEWER = NATS_SERVER_RELEASE.version;
/** The older build scripts/setup.sh makes beside the pinned one. */
const OLDER = previousNatsServerVersion();
/** A release whose binary reports its version and refuses every config, as a release that dropped a setting would. */
const REFUSING = "v9.9.9";
const WRITE_INTERVAL_MS = 100;

type NatsConnection = Awaited<ReturnType<typeof connect>>;

interface Member {
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
class Writer {
    readonly acked: { seq: number; at: number; data: string }[] = [];
    failed = 0;
    private stopped = false;
    private loop?: Promise<void>;

    constructor(private readonly nc: NatsConnection, private readonly subject: string) {}

    start(): void {
        const js = jetstream(this.nc, { timeout: 3000 });
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
}

describe(`agent: nats-server moved in place on a 3-node cluster (${OLDER} -> ${NEWER} under load, failures, a downgrade)`, function () {
    this.timeout(20 * 60_000);
    let channel: RuntimeChannel;
    let work: string;
    let mirror: http.Server;
    let mirrorUrl: string;
    let pki: TestPki;
    let routeCa: Pem;
    let clientCa: Pem;
    let client: Pem;
    let nc: NatsConnection | undefined;
    const members: Member[] = [];
    const serviceName = natsServiceName(CLUSTER);

    const mirrorDir = () => path.join(work, "mirror");
    const tarballName = (version: string) => `nats-server-${version}-linux-amd64.tar.gz`;
    const sha256Of = (version: string) => execFileSync("sha256sum", [path.join(mirrorDir(), version, tarballName(version))]).toString().split(" ")[0];
    const release = (version: string, sha256 = sha256Of(version)): NatsServerRelease => ({
        version, urlTemplate: `${mirrorUrl}/{version}/nats-server-{version}-linux-{arch}.tar.gz`, sha256: { amd64: sha256, arm64: "0".repeat(64) },
    });

    /** The tarballs setup.sh packed, and one whose binary refuses every config. */
    function fillMirror(): void {
        const tools = path.dirname(path.dirname(toolPath("nats-server")));
        for (const version of [OLDER, NEWER]) {
            const source = path.join(tools, "mirror", "nats-server", version, tarballName(version));
            if (!fs.existsSync(source)) throw new Error(`${source} is missing; run scripts/setup.sh`);
            fs.mkdirSync(path.join(mirrorDir(), version), { recursive: true });
            fs.copyFileSync(source, path.join(mirrorDir(), version, tarballName(version)));
        }
        const unpacked = path.join(work, "refusing", `nats-server-${REFUSING}-linux-amd64`);
        fs.mkdirSync(unpacked, { recursive: true });
        fs.writeFileSync(path.join(unpacked, "nats-server"), `#!/bin/sh\n[ "$1" = --version ] && { echo "nats-server: ${REFUSING}"; exit 0; }\necho "nats.conf: unknown field" >&2\nexit 1\n`, { mode: 0o755 });
        fs.mkdirSync(path.join(mirrorDir(), REFUSING), { recursive: true });
        execFileSync("tar", ["-czf", path.join(mirrorDir(), REFUSING, tarballName(REFUSING)), "-C", path.dirname(unpacked), path.basename(unpacked)]);
    }

    async function startMirror(): Promise<void> {
        mirror = http.createServer((req, res) => {
            const file = path.join(mirrorDir(), path.normalize(decodeURIComponent(new URL(req.url!, "http://mirror").pathname)));
            if (!file.startsWith(mirrorDir()) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
                res.writeHead(404).end();
                return;
            }
            res.writeHead(200, { "content-length": fs.statSync(file).size });
            fs.createReadStream(file).pipe(res);
        });
        const port = await freePort();
        await new Promise<void>((resolve) => mirror.listen(port, "127.0.0.1", resolve));
        mirrorUrl = `http://127.0.0.1:${port}`;
    }

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

    /** A NATS node after its first boot: keys, nats.conf and the secrets from user-data, no nats-server, no certificates. */
    async function addMember(index: number): Promise<Member> {
        const node: NatsNode = {
            index, hostname: natsHostname(CLUSTER, index), wgAddress: `127.0.1.${10 + index}`,
            ports: { client: await freePort(), route: await freePort(), monitor: await freePort() },
        };
        const root = path.join(work, node.hostname);
        const binary = path.join(root, "usr/local/bin/nats-server");
        fs.mkdirSync(path.dirname(binary), { recursive: true });
        const agentNats: AgentNats = { ...NATS_NODE_AGENT, layout: { ...NATS_NODE_AGENT.layout, binary, user: "root", group: "root" }, monitorPort: node.ports.monitor };
        const agent = new AgentNode(root, {
            node: node.hostname, endpoint: channel.minio.endpoint, region: channel.minio.region, bucket: RUNTIME_BUCKET, key: desiredStateKey(STACK, node.hostname),
            wgAddress: `${node.wgAddress}/8`, wgListenPort: 51820, interfaceSection: "[Interface]\n", nats: agentNats,
        }, `7000${index}`, channel.agentCredentials);
        await agent.generateKey();
        const layout: NatsLayout = { ...agentNats.layout, configDir: root + NATS_NODE_LAYOUT.configDir, tlsDir: root + NATS_NODE_LAYOUT.tlsDir, storeDir: root + NATS_NODE_LAYOUT.storeDir };
        fs.mkdirSync(layout.tlsDir, { recursive: true });
        const route = pki.leaf(`${node.hostname}-route`, natsRouteCertProfile(node), routeCa);
        const server = pki.leaf(`${node.hostname}-server`, natsServerCertProfile(node, serviceName), clientCa);
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
            [NATS_TLS_FILES.routeCa]: routeCa.certPem, [NATS_TLS_FILES.routeCert]: route.certPem,
            [NATS_TLS_FILES.clientCa]: clientCa.certPem, [NATS_TLS_FILES.serverCert]: server.certPem,
        };
        return { node, agent, agentNats, root, certificates, restart, pidFile, serverLog };
    }

    async function desiredFor(member: Member, natsServer: NatsServerRelease, extra: Partial<DesiredState> = {}): Promise<DesiredState> {
        const report = channel.minio.location(RUNTIME_BUCKET, natsServerReportKey(STACK, member.node.hostname));
        return {
            version: 1, node: member.node.hostname, instanceId: member.agent.instanceId, wireguard: { peers: [] },
            certificates: member.certificates, natsRoutes: natsRouteAddresses(member.node, members.map((m) => m.node)),
            natsServer: natsServerOffer(natsServer, await presignObjectUrl(report, channel.minio.credentials, "PUT", 3600, new Date())),
            ...extra,
        };
    }

    const agentRun = (member: Member) => member.agent.runOnce({
        env: { MESHSTACK_AGENT_SKIP_SERVICES: "1", [AGENT_NATS_RESTART_ENV]: member.restart }, timeoutMs: AGENT_RUN_TIMEOUT_SECONDS * 1000,
    });

    /** The deploy's wait, as the upgrade wait's update runs it, against the real bucket. */
    function deployWait(member: Member, natsServer: NatsServerRelease, deadlineSeconds = 600): Promise<{ waitedMs: number }> {
        const location = channel.minio.location(RUNTIME_BUCKET, natsServerReportKey(STACK, member.node.hostname));
        return waitForNatsServerUpgrade({
            endpoint: channel.minio.endpoint, region: channel.minio.region, bucket: RUNTIME_BUCKET, stack: STACK,
            node: member.node.hostname, instanceId: member.agent.instanceId, release: natsServer, deadlineSeconds,
        }, {
            now: () => Date.now(),
            sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
            get: () => signedObjectRequest(location, channel.minio.credentials, "GET"),
            log: () => undefined,
        });
    }

    /** One step of the roll: the node's desired state names the release, its agent moves, the deploy's wait reads the report. */
    async function move(member: Member, natsServer: NatsServerRelease, extra: Partial<DesiredState> = {}): Promise<{ waited: Promise<{ waitedMs: number }> }> {
        await channel.write(member.agent.params.key, await desiredFor(member, natsServer, extra));
        const waited = deployWait(member, natsServer);
        waited.catch(() => undefined);
        await agentRun(member);
        return { waited };
    }

    const pid = (member: Member) => fs.readFileSync(member.pidFile, "utf8").trim();
    const binaryVersion = (file: string) => execFileSync(file, ["--version"]).toString().trim();
    async function monitor(member: Member, what: string): Promise<Response> {
        return fetch(`http://127.0.0.1:${member.node.ports.monitor}${what}`, { signal: AbortSignal.timeout(2000) });
    }
    const runningVersion = async (member: Member) => `v${((await (await monitor(member, "/varz")).json()) as { version: string }).version}`;
    const movesLogged = (member: Member, to: string) => member.agent.log().split("\n").filter((line) => line.includes(`nats-server: moving from`) && line.endsWith(` to ${to}`)).length;

    before(async () => {
        channel = await RuntimeChannel.start();
        work = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-nats-upgrade-"));
        fillMirror();
        await startMirror();
        pki = new TestPki(path.join(work, "pki"));
        routeCa = pki.ca("route-ca", natsRouteCaProfile(CLUSTER));
        clientCa = pki.ca("client-ca", natsClientCaProfile(CLUSTER));
        client = pki.leaf("client", natsClientCertProfile("meshstack-test-client"), clientCa);
        for (let i = 0; i < 3; i++) members.push(await addMember(i));
    });

    after(async () => {
        await nc?.close().catch(() => undefined);
        for (const member of members) {
            if (fs.existsSync(member.pidFile)) {
                try {
                    process.kill(Number(pid(member)), "SIGKILL");
                } catch {
                    // already gone
                }
            }
        }
        mirror?.close();
        await channel?.stop();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    it(`the first apply installs the desired release (${OLDER}) from the mirror, checksum verified, and reports nothing: the server is not started yet`, async () => {
        for (const member of members) {
            await channel.write(member.agent.params.key, await desiredFor(member, release(OLDER)));
            await agentRun(member);
            assert.match(member.agent.log(), new RegExp(`nats-server ${OLDER} installed\\n`));
            assert.strictEqual(binaryVersion(member.agentNats.layout.binary), `nats-server: ${OLDER}`);
            const report = await signedObjectRequest(channel.minio.location(RUNTIME_BUCKET, natsServerReportKey(STACK, member.node.hostname)), channel.minio.credentials, "GET");
            assert.strictEqual(report.status, 404);
        }
        for (const member of members) await run(member.restart);
        await waitFor("every server healthy (JetStream meta current)", async () => (await Promise.all(members.map((m) => monitor(m, "/healthz")))).every((r) => r.status === 200), 120_000, 250);
    });

    it(`rolls ${OLDER} -> ${NEWER} one node at a time under a write every ${WRITE_INTERVAL_MS} ms: every node on ${NEWER}, no acknowledged write lost`, async () => {
        const connection = await connect({
            servers: members.map((m) => `tls://${m.node.wgAddress}:${m.node.ports.client}`),
            tls: { ca: clientCa.certPem, cert: client.certPem, key: client.keyPem, servername: serviceName },
            timeout: 3000, reconnectTimeWait: 200, maxReconnectAttempts: -1,
        });
        nc = connection;
        const jsm = await jetstreamManager(connection, { timeout: 5000 });
        await jsm.streams.add({ name: "ROLL", subjects: ["roll.>"], num_replicas: 3 });
        const writer = new Writer(connection, "roll");
        writer.start();
        const windows: { node: string; from: number; to: number }[] = [];
        try {
            for (const member of members) {
                const from = Date.now();
                const { waited } = await move(member, release(NEWER));
                await waited;
                windows.push({ node: member.node.hostname, from, to: Date.now() });
            }
        } finally {
            await writer.stop();
        }
        for (const member of members) {
            assert.strictEqual(await runningVersion(member), NEWER, member.node.hostname);
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
        const lost: number[] = [];
        for (const { seq, data } of writer.acked) {
            const message = await jsm.streams.getMessage("ROLL", { seq });
            if (message?.string() !== data) lost.push(seq);
        }
        console.log(`      ${writer.acked.length} writes acknowledged, ${writer.failed} not (timed out or refused while leaders moved), ${lost.length} lost`);
        assert.deepStrictEqual(lost, [], "acknowledged writes missing from the stream");
    });

    const failures: [string, () => NatsServerRelease, RegExp][] = [
        ["a tarball that does not match its checksum", () => release(OLDER, "f".repeat(64)), new RegExp(`the nats-server ${OLDER} tarball for amd64 does not match its sha256 f{64}; nothing was unpacked`)],
        ["a binary that refuses the node's nats.conf", () => release(REFUSING), new RegExp(`nats-server ${REFUSING} refuses this node's nats\\.conf \\(nats-server -t; its output is in the agent log\\)`)],
    ];
    for (const [what, bad, reason] of failures) {
        it(`${what}: the node stays on ${NEWER} without a restart, reports the failure, and the deploy's wait fails naming the node, its version and why`, async () => {
            const member = members[0];
            const before = pid(member);
            const target = bad();
            const { waited } = await move(member, target);
            await assert.rejects(waited, (err: Error) => {
                assert.match(err.message, new RegExp(`^${member.node.hostname} could not move to nats-server ${target.version}: `));
                assert.match(err.message, reason);
                assert.match(err.message, new RegExp(`It runs ${NEWER} again\\. The roll stops here`));
                return true;
            });
            assert.strictEqual(pid(member), before, "nats-server was restarted");
            assert.strictEqual(await runningVersion(member), NEWER);
            assert.strictEqual(binaryVersion(member.agentNats.layout.binary), `nats-server: ${NEWER}`);
            assert.ok(!fs.existsSync(`${member.agentNats.layout.binary}.new`), "a staged binary left behind");
            assert.deepStrictEqual(fs.readdirSync(path.join(member.root, AGENT_STATE_DIR)).filter((f) => f.startsWith("nats-server-release.")), [], "a staging dir left behind");
            assert.ok(!member.agent.log().includes("X-Amz-Signature"), "a presigned URL in the agent log");
        });
    }

    it("a failed release is not tried again when the desired state changes for another reason (the next test gives it another release, which is)", async () => {
        const member = members[0];
        const refusing = release(REFUSING);
        assert.strictEqual(movesLogged(member, REFUSING), 1);
        await move(member, refusing, { authorizedKeys: [] });
        assert.strictEqual(movesLogged(member, REFUSING), 1, "the failed release was tried again");
        assert.match(member.agent.log(), new RegExp(`nats-server ${REFUSING} failed on this node before \\(see above\\); staying on ${NEWER} until the desired release changes \\(to retry it: rm .*nats-server-failed .*applied\\.sha256, then run the agent\\)`));
    });

    it(`a downgrade (${NEWER} -> ${OLDER}) is the same move: the node runs ${OLDER}, healthy, and reports it`, async () => {
        const member = members[0];
        const { waited } = await move(member, release(OLDER));
        await waited;
        assert.strictEqual(await runningVersion(member), OLDER);
        assert.strictEqual(binaryVersion(`${member.agentNats.layout.binary}.previous`), `nats-server: ${NEWER}`);
        assert.strictEqual((await monitor(member, "/healthz")).status, 200);
    });
});
