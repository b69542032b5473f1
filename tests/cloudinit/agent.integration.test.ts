/**
 * The node agent on real software: the rendered agent (script, renderer,
 * the read-only key's curl config) fetches its desired state from MinIO with
 * curl's SigV4 and applies it.
 *
 * - What a node can read: the agents' key reads the runtime bucket and
 *   nothing else; it can neither read a bootstrap object nor write a
 *   desired state.
 * - Root's SSH keys: a real sshd reads the authorized_keys the agent
 *   writes; a key the desired state lists logs in, one it no longer lists
 *   is refused.
 * - The agents' key: a second MinIO user with the same read-only policy,
 *   offered sealed to the node's WireGuard key; one run proves it with a
 *   signed GET, switches to it and reports it through a presigned PUT, and
 *   the node reads on once the old user is deleted. A key that cannot read
 *   is not installed.
 * - WireGuard: members in network namespaces of their own, each with a live
 *   wireguard-go interface (the host kernel has no wireguard module), joined
 *   by a bridge in a further namespace. A changed peer set (a member added,
 *   a member's key changed) is applied with `wg syncconf` to the running
 *   interface: same ifindex, pings across the tunnel before and after.
 *   Each member runs in its own mount namespace too, for a private
 *   /run/wireguard (wg finds wireguard-go by the socket named after the
 *   interface, and every member's interface is wg0). The members reach
 *   MinIO (on the host's loopback) through a veth from the host into the
 *   bridge and a TCP relay on the host's end of it.
 */
import * as assert from "assert";
import { ChildProcess, execFile, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import * as tls from "tls";
import { connect } from "@nats-io/transport-node";
import { AgentNats, AgentParams, NATS_NODE_AGENT } from "../../cloudinit/agent";
import {
    NATS_CLUSTER_ROUTES_FILE, NATS_CLUSTER_SECRETS_FILE, NATS_DEFAULT_JETSTREAM_LIMITS, NATS_NODE_LAYOUT, NATS_ROUTE_PASSWORD_PATH, NATS_SYSTEM_ACCOUNT_FILE, NATS_TLS_FILES,
    NatsLayout, natsConfPath, natsRouteAddresses, renderNatsClusterSecrets, renderNatsConf, renderNatsSystemAccount,
} from "../../cloudinit/nats";
import {
    natsClientCaProfile, natsClientCertProfile, natsRouteCaProfile, natsRouteCertProfile, natsServerCertProfile, opensslExtensions, opensslRequestConfig,
} from "../../cloudinit/natsCerts";
import { natsHostname, NatsNode, natsServiceName } from "../../lib/topology";
import { Pem, TestPki } from "../support/natsCluster";
import { wgInterfaceSection } from "../../cloudinit/nodeBootstrap";
import { agentKeyReportKey, desiredStateKey, DesiredState, DesiredPeer } from "../../lib/runtimeChannel";
import { AgentKeyOffer, AgentKeyPair, agentKeyId, agentKeyReportProblems, sealAgentKey } from "../../lib/agentKey";
import { presignObjectUrl, signedObjectRequest } from "../../providers/s3";
import { renderAgentCredentials } from "../../cloudinit/agent";
import { AGENT_CREDENTIALS_PATH, AGENT_STATE_DIR, ROOT_AUTHORIZED_KEYS_PATH } from "../../cloudinit/agent/layout";
import { AgentNode } from "../support/agentNode";
import { BOOTSTRAP_BUCKET, RUNTIME_BUCKET, RuntimeChannel } from "../support/runtimeChannel";
import { freePort, waitFor } from "../support/ports";
import { toolPath } from "../support/tools";

const run = promisify(execFile);
const STACK = "test";
const LAN_PREFIX = "192.168.77";
const WG_PORT = 51820;
/** What the agent logs for these tests' desired states, which carry no authorizedKeys (as a deploy from before the agent owned the file wrote them). */
const KEYS_LEFT_ALONE = "authorized_keys left alone \\(no authorizedKeys in the desired state\\)";

function agentParams(channel: RuntimeChannel, node: string, wgAddress: string, endpoint = channel.minio.endpoint): AgentParams {
    return {
        node, endpoint, region: channel.minio.region, bucket: RUNTIME_BUCKET, key: desiredStateKey(STACK, node),
        wgAddress, wgListenPort: WG_PORT, interfaceSection: wgInterfaceSection({ address: wgAddress, listenPort: WG_PORT }),
    };
}

describe("agent: what a node's key can read", function () {
    this.timeout(120_000);
    let channel: RuntimeChannel;

    before(async () => {
        channel = await RuntimeChannel.start();
    });
    after(async () => {
        await channel?.stop();
    });

    it("the agents' key reads desired states, and cannot read the bootstrap bucket nor write the runtime bucket", async () => {
        const key = desiredStateKey(STACK, "meshstack-test-nats-0");
        await channel.write(key, { version: 1, node: "meshstack-test-nats-0", instanceId: "1", wireguard: { peers: [] } });
        await channel.minio.putObject(BOOTSTRAP_BUCKET, "bootstrap/test/meshstack-test-nats-0.yaml", "#cloud-config\n");
        const agentKey = channel.agentCredentials;
        const read = await signedObjectRequest(channel.minio.location(RUNTIME_BUCKET, key), agentKey, "GET");
        assert.strictEqual(read.status, 200);
        const bootstrap = await signedObjectRequest(channel.minio.location(BOOTSTRAP_BUCKET, "bootstrap/test/meshstack-test-nats-0.yaml"), agentKey, "GET");
        assert.strictEqual(bootstrap.status, 403, "the agents' key reads a bootstrap object");
        const write = await signedObjectRequest(channel.minio.location(RUNTIME_BUCKET, key), agentKey, "PUT", Buffer.from("{}"));
        assert.strictEqual(write.status, 403, "the agents' key writes a desired state");
        const other = await signedObjectRequest(channel.minio.location(RUNTIME_BUCKET, desiredStateKey(STACK, "other")), agentKey, "PUT", Buffer.from("{}"));
        assert.strictEqual(other.status, 403, "the agents' key creates an object");
        assert.strictEqual(String(await channel.minio.getObject(RUNTIME_BUCKET, key)), JSON.stringify({ version: 1, node: "meshstack-test-nats-0", instanceId: "1", wireguard: { peers: [] } }));
    });
});

describe("agent: what it refuses to apply", function () {
    this.timeout(120_000);
    let channel: RuntimeChannel;
    let work: string;
    let agent: AgentNode;
    let peerKey: string;
    const node = "meshstack-test-hub";
    const skip = { env: { MESHSTACK_AGENT_SKIP_SERVICES: "1" } };
    const wgConf = () => path.join(agent.root, "etc/wireguard/wg0.conf");

    before(async () => {
        channel = await RuntimeChannel.start();
        work = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-agent-refuse-"));
        agent = new AgentNode(path.join(work, node), agentParams(channel, node, "10.44.0.1/24"), "70001", channel.agentCredentials);
        await agent.generateKey();
        const peerPrivateKey = execFileSync(toolPath("wg"), ["genkey"]);
        peerKey = execFileSync(toolPath("wg"), ["pubkey"], { input: peerPrivateKey }).toString().trim();
    });
    after(async () => {
        await channel?.stop();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    const state = (instanceId: string, allowedIps: string[]): DesiredState => ({
        version: 1, node, instanceId, wireguard: { peers: [{ name: "meshstack-test-nats-0", publicKey: peerKey, endpoint: "192.0.2.10:51820", allowedIps }] },
    });

    it("a desired state still made for the previous instance is waited out, and the one for this instance is applied", async () => {
        await agent.runOnce(skip);
        assert.match(agent.log(), /no desired state at .* yet/);
        await channel.write(agent.params.key, state("69999", ["10.44.0.10/32"]));
        await agent.runOnce(skip);
        assert.match(agent.log(), /is not for this instance yet; waiting\n$/);
        assert.ok(!fs.existsSync(wgConf()), "a predecessor's peers were applied");
        await channel.write(agent.params.key, state("70001", ["10.44.0.10/32"]));
        await agent.runOnce(skip);
        assert.match(agent.log(), new RegExp(`applied desired state [0-9a-f]{64}: 1 peer\\(s\\), ${KEYS_LEFT_ALONE}\\n$`));
        assert.match(fs.readFileSync(wgConf(), "utf8"), /AllowedIPs = 10\.44\.0\.10\/32/);
    });

    it("a peer outside the mesh subnet is refused: the run fails and the applied files stay", async () => {
        const applied = fs.readFileSync(wgConf(), "utf8");
        await channel.write(agent.params.key, state("70001", ["0.0.0.0/0"]));
        await assert.rejects(agent.runOnce(skip));
        assert.match(agent.log(), /allowed IPs 0\.0\.0\.0\/0 are outside 10\.44\.0\.0\/24/);
        assert.match(agent.log(), /refused desired state [0-9a-f]{64} \(see above\); nothing applied\n$/);
        assert.strictEqual(fs.readFileSync(wgConf(), "utf8"), applied);
    });
});

/**
 * The agent owns root's authorized_keys: a real sshd (its own config, host
 * key and port on 127.0.0.1) reads the file the agent writes under the
 * node's root, so what logs in is exactly what the desired state lists.
 */
describe("agent: root's SSH keys from the desired state, logged in with by a real sshd", function () {
    this.timeout(120_000);
    const SSHD = "/usr/sbin/sshd";
    const node = "meshstack-test-ssh";
    const skip = { env: { MESHSTACK_AGENT_SKIP_SERVICES: "1" } };
    let channel: RuntimeChannel;
    let work: string;
    let agent: AgentNode;
    let sshd: ChildProcess | undefined;
    let sshdExited: Promise<void> | undefined;
    const sshdOutput: string[] = [];
    let port: number;
    interface KeyPair {
        privateKey: string;
        publicKey: string;
    }
    let keyA: KeyPair;
    let keyB: KeyPair;

    /** A fresh ed25519 key pair, as an operator makes one. */
    async function keyPair(name: string): Promise<KeyPair> {
        const privateKey = path.join(work, `id_${name}`);
        await run(toolPath("ssh-keygen"), ["-q", "-t", "ed25519", "-N", "", "-C", `operator-${name}@example`, "-f", privateKey]);
        return { privateKey, publicKey: fs.readFileSync(`${privateKey}.pub`, "utf8").trim() };
    }

    before(async () => {
        if (!fs.existsSync(SSHD)) throw new Error(`${SSHD} is not installed; run scripts/setup.sh (it installs openssh-server)`);
        channel = await RuntimeChannel.start();
        work = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-agent-ssh-"));
        agent = new AgentNode(path.join(work, node), agentParams(channel, node, "10.44.0.1/24"), "80001", channel.agentCredentials);
        await agent.generateKey();
        keyA = await keyPair("a");
        keyB = await keyPair("b");
        const sshdDir = path.join(work, "sshd");
        fs.mkdirSync(sshdDir, { mode: 0o700 });
        await run(toolPath("ssh-keygen"), ["-q", "-t", "ed25519", "-N", "", "-f", path.join(sshdDir, "host_ed25519_key")]);
        const config = path.join(sshdDir, "sshd_config");
        fs.writeFileSync(config, [
            "ListenAddress 127.0.0.1",
            `HostKey ${path.join(sshdDir, "host_ed25519_key")}`,
            `PidFile ${path.join(sshdDir, "sshd.pid")}`,
            `AuthorizedKeysFile ${path.join(agent.root, ROOT_AUTHORIZED_KEYS_PATH)}`,
            // The node's root is a temp dir under /tmp, which is world-writable: StrictModes would refuse every key in it.
            "StrictModes no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            `AllowUsers ${os.userInfo().username}`,
            "",
        ].join("\n"));
        // sshd's privilege separation directory, which the packaged service creates.
        fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
        await run(SSHD, ["-t", "-f", config]);
        port = await freePort();
        const child = spawn(SSHD, ["-D", "-e", "-f", config, "-p", String(port)], { stdio: ["ignore", "pipe", "pipe"] });
        sshd = child;
        sshdExited = new Promise((resolve) => child.once("exit", () => resolve()));
        child.stdout!.on("data", (d) => sshdOutput.push(String(d)));
        child.stderr!.on("data", (d) => sshdOutput.push(String(d)));
        await waitFor(`sshd to greet on 127.0.0.1:${port}`, () => {
            if (child.exitCode !== null) throw new Error(`sshd exited ${child.exitCode}: ${sshdOutput.join("")}`);
            return new Promise<boolean>((resolve) => {
                const socket = net.connect(port, "127.0.0.1");
                socket.once("data", (banner) => {
                    socket.destroy();
                    resolve(String(banner).startsWith("SSH-2.0-"));
                });
                socket.once("error", () => resolve(false));
            });
        }, 10_000, 50);
    });

    after(async () => {
        if (sshd && sshd.exitCode === null && sshd.signalCode === null) {
            sshd.kill("SIGTERM");
            await sshdExited;
        }
        await channel?.stop();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    /** `ssh -i <key> true` as the test's user, with nothing but that key: resolves with the exit code and what ssh said. */
    async function login(key: KeyPair): Promise<{ code: number; stderr: string }> {
        const args = [
            "-F", "/dev/null", "-i", key.privateKey, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
            "-p", String(port), `${os.userInfo().username}@127.0.0.1`, "true",
        ];
        try {
            const { stderr } = await run(toolPath("ssh"), args, { timeout: 30_000 });
            return { code: 0, stderr };
        } catch (err) {
            const failed = err as { code?: number; stderr?: string };
            return { code: typeof failed.code === "number" ? failed.code : -1, stderr: failed.stderr ?? String(err) };
        }
    }

    async function publishAndApply(authorizedKeys: string[]): Promise<void> {
        await channel.write(agent.params.key, { version: 1, node, instanceId: agent.instanceId, wireguard: { peers: [] }, authorizedKeys } satisfies DesiredState);
        await agent.runOnce(skip);
        assert.match(agent.log(), new RegExp(`applied desired state [0-9a-f]{64}: 0 peer\\(s\\), ${authorizedKeys.length} ssh key\\(s\\)\\n$`));
    }

    const refused = (outcome: { code: number; stderr: string }) => outcome.code === 255 && /Permission denied \(publickey\)/.test(outcome.stderr);

    it("before any desired state no key logs in; with key A published, A logs in and B is refused", async () => {
        assert.ok(refused(await login(keyA)), "A logged in before the agent installed any key");
        await publishAndApply([keyA.publicKey]);
        assert.match(agent.log(), /root's authorized_keys replaced: 1 key\(s\)\n/);
        const a = await login(keyA);
        assert.strictEqual(a.code, 0, `A could not log in: ${a.stderr}\n${sshdOutput.join("")}`);
        assert.ok(refused(await login(keyB)), "B logged in without being listed");
    });

    it("with key B published instead of A, B logs in and A is refused", async () => {
        await publishAndApply([keyB.publicKey]);
        const b = await login(keyB);
        assert.strictEqual(b.code, 0, `B could not log in: ${b.stderr}\n${sshdOutput.join("")}`);
        const a = await login(keyA);
        assert.ok(refused(a), `A, removed from the list, still logs in (exit ${a.code}: ${a.stderr})`);
    });

    it("with no key published (the operator removed every one), no key logs in", async () => {
        await publishAndApply([]);
        assert.match(agent.log(), /root's authorized_keys EMPTIED/);
        for (const key of [keyA, keyB]) assert.ok(refused(await login(key)), `${key.privateKey} still logs in`);
    });
});

describe("agent: the agents' key switched in place from a sealed offer, and reported", function () {
    this.timeout(120_000);
    let channel: RuntimeChannel;
    let work: string;
    let peerKey: string;
    const skip = { env: { MESHSTACK_AGENT_SKIP_SERVICES: "1" } };
    const next: AgentKeyPair = { accessKeyId: "meshstack-agent-next", secretAccessKey: "meshstackAgentNextSecret0123456789" };

    before(async () => {
        channel = await RuntimeChannel.start();
        await channel.addAgentKey(next);
        work = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-agent-key-"));
        peerKey = execFileSync(toolPath("wg"), ["pubkey"], { input: execFileSync(toolPath("wg"), ["genkey"]) }).toString().trim();
    });
    after(async () => {
        await channel?.stop();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    /** A hub after its first boot, reading with the key its user-data carried (the channel's agents' key). */
    async function bootedNode(node: string, instanceId: string): Promise<{ agent: AgentNode; publicKey: string }> {
        const agent = new AgentNode(path.join(work, node), agentParams(channel, node, "10.44.0.1/24"), instanceId, channel.agentCredentials);
        return { agent, publicKey: await agent.generateKey() };
    }

    /** What the deploy offers a node: the pair sealed to its WireGuard key, and a presigned PUT of its report. */
    async function offerTo(node: string, publicKey: string, pair: AgentKeyPair): Promise<AgentKeyOffer> {
        const report = channel.minio.location(RUNTIME_BUCKET, agentKeyReportKey(STACK, node));
        return { id: agentKeyId(pair.accessKeyId), sealed: sealAgentKey(pair, publicKey), reportUrl: await presignObjectUrl(report, channel.minio.credentials, "PUT", 600, new Date()) };
    }

    const state = (agent: AgentNode, peers: DesiredPeer[], agentKey: AgentKeyOffer): DesiredState => ({
        version: 1, node: agent.params.node, instanceId: agent.instanceId, wireguard: { peers }, agentKey,
    });
    const credentials = (agent: AgentNode) => fs.readFileSync(path.join(agent.root, AGENT_CREDENTIALS_PATH), "utf8");
    const report = async (node: string) => channel.minio.getObject(RUNTIME_BUCKET, agentKeyReportKey(STACK, node));
    const id = agentKeyId(next.accessKeyId);

    it("an offered key that cannot read (a wrong secret, sealed properly) is not installed: the run fails naming its id, the node keeps its key and reports nothing", async () => {
        const node = "meshstack-test-wrong";
        const { agent, publicKey } = await bootedNode(node, "80002");
        const wrong = { ...next, secretAccessKey: "meshstackAgentWrongSecret012345678" };
        await channel.write(agent.params.key, state(agent, [], await offerTo(node, publicKey, wrong)));
        await assert.rejects(agent.runOnce(skip));
        assert.match(agent.log(), new RegExp(`the offered agents' key ${id} cannot read ${RUNTIME_BUCKET}/${agent.params.key} \\(HTTP 403\\); keeping the current key\\n$`));
        assert.strictEqual(credentials(agent), renderAgentCredentials(channel.agentCredentials.accessKeyId, channel.agentCredentials.secretAccessKey));
        assert.strictEqual(await report(node), undefined);
        const stateFiles = fs.readdirSync(path.join(agent.root, AGENT_STATE_DIR));
        assert.ok(!stateFiles.includes("applied.sha256"), "a failed switch was recorded as applied: the next run would not try again");
        assert.deepStrictEqual(stateFiles.filter((f) => f.startsWith("stage.") || f.startsWith("agent-key")), [], "the staged key or its report was left behind");
        assert.ok(!agent.log().includes(wrong.secretAccessKey));
    });

    it("one run switches to the offered key after a signed GET with it, and reports it; with the old key deleted, the next desired state is applied with the new one", async () => {
        const node = "meshstack-test-keyed";
        const { agent, publicKey } = await bootedNode(node, "80001");
        const offer = await offerTo(node, publicKey, next);
        await channel.write(agent.params.key, state(agent, [], offer));
        await agent.runOnce(skip);
        const desired = `${RUNTIME_BUCKET}/${agent.params.key}`;
        assert.match(agent.log(), new RegExp(`agents' key switched to ${id} \\(a signed GET with it read ${desired}\\)\\n.*applied desired state [0-9a-f]{64}: 0 peer\\(s\\), ${KEYS_LEFT_ALONE}, agents' key ${id} \\(switching\\)\\n.*reported agents' key ${id}\\n$`));
        assert.strictEqual(credentials(agent), renderAgentCredentials(next.accessKeyId, next.secretAccessKey));
        assert.strictEqual(fs.statSync(path.join(agent.root, AGENT_CREDENTIALS_PATH)).mode & 0o777, 0o600);
        assert.deepStrictEqual(agentKeyReportProblems(JSON.parse(String(await report(node))), { node, instanceId: agent.instanceId, agentKeyId: id }), []);
        for (const secret of [next.secretAccessKey, offer.reportUrl.split("X-Amz-Signature=")[1]]) assert.ok(!agent.log().includes(secret), "a secret in the log");

        await channel.removeAgentKey(channel.agentCredentials.accessKeyId);
        const old = await signedObjectRequest(channel.minio.location(RUNTIME_BUCKET, agent.params.key), channel.agentCredentials, "GET");
        assert.strictEqual(old.status, 403, "the old key still reads");
        const peer: DesiredPeer = { name: "meshstack-test-nats-0", publicKey: peerKey, endpoint: "192.0.2.10:51820", allowedIps: ["10.44.0.10/32"] };
        await channel.write(agent.params.key, state(agent, [peer], offer));
        await agent.runOnce(skip);
        // The report is the one already sent: nothing is sent again.
        assert.match(agent.log(), new RegExp(`applied desired state [0-9a-f]{64}: 1 peer\\(s\\), ${KEYS_LEFT_ALONE}, agents' key ${id} \\(in use\\)\\n$`));
        assert.match(fs.readFileSync(path.join(agent.root, "etc/wireguard/wg0.conf"), "utf8"), /AllowedIPs = 10\.44\.0\.10\/32/);
    });
});

/** A process holding a network and mount namespace; members run wireguard-go as it. */
class Namespace {
    private readonly exited: Promise<void>;
    public readonly output: string[] = [];
    private constructor(public readonly name: string, private readonly child: ChildProcess) {
        this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
        child.stdout!.on("data", (d) => this.output.push(String(d)));
        child.stderr!.on("data", (d) => this.output.push(String(d)));
    }

    static async start(name: string, script: string): Promise<Namespace> {
        const child = spawn(toolPath("unshare"), ["--net", "--mount", "--propagation", "private", "--", "bash", "-c", script], { stdio: ["ignore", "pipe", "pipe"] });
        const ns = new Namespace(name, child);
        await waitFor(`namespace ${name} to be up`, async () => {
            if (child.exitCode !== null) throw new Error(`namespace ${name} exited: ${ns.output.join("")}`);
            return ns.output.join("").includes("ready");
        }, 10_000, 20);
        return ns;
    }

    get pid(): number {
        return this.child.pid!;
    }

    get enter(): string[] {
        return [toolPath("nsenter"), "-t", String(this.pid), "-n", "-m", "--"];
    }

    async exec(...command: string[]): Promise<string> {
        return (await run(this.enter[0], [...this.enter.slice(1), ...command], { timeout: 30_000 })).stdout;
    }

    async stop(): Promise<void> {
        if (this.child.exitCode === null && this.child.signalCode === null) {
            this.child.kill("SIGKILL");
            await this.exited;
        }
    }
}

interface Member {
    name: string;
    host: number;
    ns: Namespace;
    agent: AgentNode;
    publicKey: string;
}

describe("agent: WireGuard peers applied with wg syncconf to live wireguard-go interfaces in network namespaces", function () {
    this.timeout(240_000);
    let channel: RuntimeChannel;
    let work: string;
    let lan: Namespace;
    let relay: net.Server;
    let endpoint: string;
    const members: Member[] = [];

    before(async () => {
        channel = await RuntimeChannel.start();
        work = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-agent-wg-"));
        // The mount point of each member's private tmpfs.
        fs.mkdirSync("/run/wireguard", { recursive: true });
        lan = await Namespace.start("lan", "set -e; ip link add br0 type bridge; ip link set br0 up; echo ready; exec sleep 3600");
        // The host's end goes away with the lan namespace (a veth pair dies with either end).
        await run(toolPath("ip"), ["link", "add", "msa-host0", "type", "veth", "peer", "name", "host0", "netns", String(lan.pid)]);
        await run(toolPath("ip"), ["addr", "add", `${LAN_PREFIX}.254/24`, "dev", "msa-host0"]);
        await run(toolPath("ip"), ["link", "set", "msa-host0", "up"]);
        await lan.exec("ip", "link", "set", "host0", "master", "br0", "up");
        const minio = new URL(channel.minio.endpoint);
        relay = net.createServer((socket) => {
            const upstream = net.connect(Number(minio.port), minio.hostname);
            socket.pipe(upstream).pipe(socket);
            socket.on("error", () => upstream.destroy());
            upstream.on("error", () => socket.destroy());
        });
        await new Promise<void>((resolve) => relay.listen(0, `${LAN_PREFIX}.254`, resolve));
        endpoint = `http://${LAN_PREFIX}.254:${(relay.address() as net.AddressInfo).port}`;
    });

    after(async () => {
        for (const member of members) await member.ns.stop();
        await new Promise((resolve) => (relay ? relay.close(resolve) : resolve(undefined)));
        await lan?.stop();
        await channel?.stop();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    async function addMember(name: string, host: number): Promise<Member> {
        const wireguardGo = toolPath("wireguard-go");
        const ns = await Namespace.start(name, `set -e
mount -t tmpfs tmpfs /run/wireguard
ip link set lo up
echo ready
exec ${wireguardGo} -f wg0`);
        const index = members.length + 1;
        await run(toolPath("ip"), ["link", "add", `lan${index}`, "netns", String(lan.pid), "type", "veth", "peer", "name", "eth0", "netns", String(ns.pid)]);
        await lan.exec("ip", "link", "set", `lan${index}`, "master", "br0", "up");
        await waitFor(`wireguard-go in ${name} to make wg0`, async () => (await ns.exec("ip", "-o", "link")).includes("wg0"), 10_000, 50);
        const agent = new AgentNode(path.join(work, name), agentParams(channel, name, `10.44.0.${host}/24`, endpoint), `4000${index}`, channel.agentCredentials);
        const publicKey = await agent.generateKey();
        // What wg-quick does at first boot with the [Interface] the bootstrap wrote.
        await ns.exec("bash", "-c", `set -e
ip addr add ${LAN_PREFIX}.${host}/24 dev eth0 && ip link set eth0 up
ip addr add 10.44.0.${host}/24 dev wg0
wg set wg0 listen-port ${WG_PORT} private-key ${agent.privateKeyFile}
ip link set wg0 up`);
        const member = { name, host, ns, agent, publicKey };
        members.push(member);
        return member;
    }

    function desiredFor(self: Member, peers: Member[]): DesiredState {
        const wgPeers: DesiredPeer[] = peers.filter((p) => p !== self).map((p) => ({
            name: p.name, publicKey: p.publicKey, endpoint: `${LAN_PREFIX}.${p.host}:${WG_PORT}`, allowedIps: [`10.44.0.${p.host}/32`], keepaliveSeconds: 25,
        }));
        return { version: 1, node: self.name, instanceId: self.agent.instanceId, wireguard: { peers: wgPeers } };
    }

    async function publishAndApply(set: Member[]): Promise<void> {
        for (const member of set) await channel.write(member.agent.params.key, desiredFor(member, set));
        for (const member of set) {
            await member.agent.runOnce({ prefix: member.ns.enter });
            assert.match(member.agent.log(), new RegExp(`applied desired state [0-9a-f]{64}: ${set.length - 1} peer\\(s\\), ${KEYS_LEFT_ALONE}\\n$`));
        }
    }

    async function ifindex(member: Member): Promise<number> {
        return JSON.parse(await member.ns.exec("ip", "-j", "link", "show", "wg0"))[0].ifindex;
    }

    async function livePeers(member: Member): Promise<string[]> {
        return (await member.ns.exec("wg", "show", "wg0", "peers")).trim().split("\n").filter(Boolean).sort();
    }

    async function ping(from: Member, to: Member): Promise<void> {
        // The first packet waits for a handshake; retry to a deadline rather than one long timeout.
        await waitFor(`ping ${from.name} -> ${to.name} over wg0`, async () => {
            try {
                await from.ns.exec("ping", "-c", "1", "-W", "1", `10.44.0.${to.host}`);
                return true;
            } catch {
                return false;
            }
        }, 20_000, 200);
    }

    it("applies a peer set to the live interface; a member added and a member's key changed are applied in place, pings work before and after", async () => {
        const [a, b, c] = [await addMember("meshstack-test-a", 1), await addMember("meshstack-test-b", 10), await addMember("meshstack-test-c", 11)];
        assert.deepStrictEqual(await livePeers(a), []);
        await publishAndApply([a, b, c]);
        assert.deepStrictEqual(await livePeers(a), [b.publicKey, c.publicKey].sort());
        for (const [from, to] of [[a, b], [a, c], [b, c]]) await ping(from, to);
        const indexes = await Promise.all([a, b, c].map(ifindex));

        // c comes back with a new key (its replacement), d joins.
        const d = await addMember("meshstack-test-d", 12);
        const oldKeyOfC = c.publicKey;
        c.publicKey = await c.agent.generateKey();
        await publishAndApply([a, b, c, d]);

        assert.deepStrictEqual(await Promise.all([a, b, c].map(ifindex)), indexes, "wg0 was recreated instead of synced");
        for (const member of [a, b, d]) {
            assert.deepStrictEqual(await livePeers(member), [a, b, c, d].filter((m) => m !== member).map((m) => m.publicKey).sort());
            assert.ok(!(await livePeers(member)).includes(oldKeyOfC));
        }
        // syncconf set c's own new private key on its running interface too.
        assert.strictEqual((await c.ns.exec("wg", "show", "wg0", "public-key")).trim(), c.publicKey);
        for (const [from, to] of [[a, b], [a, c], [b, c], [a, d], [d, c]]) await ping(from, to);
        assert.match(fs.readFileSync(path.join(a.agent.root, "etc/wireguard/wg0.conf"), "utf8"), new RegExp(`PublicKey = ${d.publicKey.replace(/[+/]/g, "\\$&")}`));
    });

    it("an unchanged desired state is not applied again: no log line, the same interface", async () => {
        const a = members[0];
        const before = a.agent.log();
        const index = await ifindex(a);
        await a.agent.runOnce({ prefix: a.ns.enter });
        assert.strictEqual(a.agent.log(), before);
        assert.strictEqual(await ifindex(a), index);
    });
});

/**
 * NATS: three real nats-server processes on loopback (each on its own
 * 127.0.1.x, the stand-in for its WireGuard address, inside the agent's
 * subnet 127.0.0.0/8), each with an agent root. The keys and requests are
 * made as the first boot makes them, the deploy's side signs them with
 * openssl from the same profiles as @pulumi/tls. The agents run with
 * MESHSTACK_AGENT_SKIP_SERVICES=1 (there is no systemd here), so the test
 * does what the agent's `systemctl reload nats-server` does, the unit's
 * ExecReload: SIGHUP to the server, after the agent installed the files.
 */
describe("agent: NATS certificates and routes applied to a running 3-node nats-server cluster by reload", function () {
    this.timeout(240_000);
    const clusterName = "meshtest";
    const serviceName = natsServiceName(clusterName);
    let channel: RuntimeChannel;
    let work: string;
    let pki: TestPki;
    let routeCa: Pem;
    let clientCa: Pem;
    let client: Pem;
    let serial = 0x1000;
    const password = "meshstackTestPassword0123456789";
    const servers: NatsMember[] = [];

    interface NatsMember {
        node: NatsNode;
        agent: AgentNode;
        conf: string;
        tlsDir: string;
        child?: ChildProcess;
        exited?: Promise<void>;
        log: string[];
        serials: Record<string, string>;
    }

    // As the program hands them to the agent, with the test's own binary and user.
    const agentNats: AgentNats = { ...NATS_NODE_AGENT, layout: { ...NATS_NODE_AGENT.layout, binary: toolPath("nats-server"), user: "root", group: "root" } };

    before(async () => {
        channel = await RuntimeChannel.start();
        work = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-agent-nats-"));
        pki = new TestPki(path.join(work, "pki"));
        routeCa = pki.ca("route-ca", natsRouteCaProfile(clusterName));
        clientCa = pki.ca("client-ca", natsClientCaProfile(clusterName));
        client = pki.leaf("client", natsClientCertProfile("meshstack-test-client"), clientCa);
    });

    after(async () => {
        for (const server of servers) {
            if (server.child && server.child.exitCode === null) {
                server.child.kill("SIGKILL");
                await server.exited;
            }
        }
        await channel?.stop();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    const openssl = async (...args: string[]) => (await run(toolPath("openssl"), args)).stdout;

    /** A NATS node after its first boot: keys and requests made on it, nats.conf and the route password from user-data, no certificates yet. */
    async function addServer(): Promise<NatsMember> {
        const index = servers.length;
        const node: NatsNode = {
            index, hostname: natsHostname(clusterName, index), wgAddress: `127.0.1.${10 + index}`,
            ports: { client: await freePort(), route: await freePort(), monitor: await freePort() },
        };
        const root = path.join(work, node.hostname);
        const agent = new AgentNode(root, {
            ...agentParams(channel, node.hostname, `${node.wgAddress}/8`), nats: agentNats,
        }, `5000${index}`, channel.agentCredentials);
        await agent.generateKey();
        const rooted: NatsLayout = { ...agentNats.layout, configDir: root + NATS_NODE_LAYOUT.configDir, tlsDir: root + NATS_NODE_LAYOUT.tlsDir, storeDir: root + NATS_NODE_LAYOUT.storeDir };
        fs.mkdirSync(rooted.tlsDir, { recursive: true });
        for (const [name, keyFile, profile] of [
            ["route", NATS_TLS_FILES.routeKey, natsRouteCertProfile(node)],
            ["server", NATS_TLS_FILES.serverKey, natsServerCertProfile(node, serviceName)],
        ] as const) {
            await openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path.join(rooted.tlsDir, keyFile));
            fs.writeFileSync(path.join(work, `${node.hostname}-${name}.cnf`), opensslRequestConfig(profile));
            await openssl("req", "-new", "-key", path.join(rooted.tlsDir, keyFile), "-config", path.join(work, `${node.hostname}-${name}.cnf`), "-out", path.join(work, `${node.hostname}-${name}.csr`));
        }
        fs.writeFileSync(path.join(rooted.configDir, NATS_CLUSTER_SECRETS_FILE), renderNatsClusterSecrets({ password }), { mode: 0o600 });
        fs.writeFileSync(path.join(rooted.configDir, NATS_SYSTEM_ACCOUNT_FILE), renderNatsSystemAccount({ password }), { mode: 0o600 });
        fs.mkdirSync(path.dirname(root + NATS_ROUTE_PASSWORD_PATH), { recursive: true });
        fs.writeFileSync(root + NATS_ROUTE_PASSWORD_PATH, password + "\n", { mode: 0o600 });
        const conf = natsConfPath(rooted);
        fs.writeFileSync(conf, renderNatsConf({ clusterName, node, layout: rooted, clientHost: node.wgAddress, jetstream: NATS_DEFAULT_JETSTREAM_LIMITS }));
        const member: NatsMember = { node, agent, conf, tlsDir: rooted.tlsDir, log: [], serials: {} };
        servers.push(member);
        return member;
    }

    /** What the deploy's LocallySignedCert does with a published request: sign it, with a fresh serial. */
    async function sign(member: NatsMember, name: "route" | "server"): Promise<string> {
        const profile = name === "route" ? natsRouteCertProfile(member.node) : natsServerCertProfile(member.node, serviceName);
        const issuer = name === "route" ? routeCa : clientCa;
        const ext = path.join(work, `${member.node.hostname}-${name}.ext`);
        fs.writeFileSync(ext, opensslExtensions(profile));
        const out = path.join(work, `${member.node.hostname}-${name}.crt`);
        const hex = (++serial).toString(16).toUpperCase();
        await openssl("x509", "-req", "-in", path.join(work, `${member.node.hostname}-${name}.csr`), "-CA", issuer.certFile, "-CAkey", issuer.keyFile,
            "-set_serial", `0x${hex}`, "-days", "730", "-extfile", ext, "-out", out);
        member.serials[name] = hex;
        return fs.readFileSync(out, "utf8");
    }

    async function desiredFor(member: NatsMember, cluster: NatsMember[]): Promise<DesiredState> {
        return {
            version: 1, node: member.node.hostname, instanceId: member.agent.instanceId, wireguard: { peers: [] },
            certificates: {
                [NATS_TLS_FILES.routeCa]: routeCa.certPem, [NATS_TLS_FILES.routeCert]: await sign(member, "route"),
                [NATS_TLS_FILES.clientCa]: clientCa.certPem, [NATS_TLS_FILES.serverCert]: await sign(member, "server"),
            },
            natsRoutes: natsRouteAddresses(member.node, cluster.map((m) => m.node)),
        };
    }

    async function publishAndApply(targets: NatsMember[], cluster: NatsMember[]): Promise<void> {
        for (const member of targets) await channel.write(member.agent.params.key, await desiredFor(member, cluster));
        for (const member of targets) {
            await member.agent.runOnce({ env: { MESHSTACK_AGENT_SKIP_SERVICES: "1" } });
            assert.match(member.agent.log(), /not touching nats-server \(changed=1\)/);
            assert.match(member.agent.log(), new RegExp(`applied desired state [0-9a-f]{64}: 0 peer\\(s\\), ${cluster.length - 1} route\\(s\\), 4 certificate\\(s\\), ${KEYS_LEFT_ALONE}\\n$`));
        }
    }

    function start(member: NatsMember): void {
        const child = spawn(toolPath("nats-server"), ["-c", member.conf], { stdio: ["ignore", "pipe", "pipe"] });
        member.child = child;
        member.exited = new Promise((resolve) => child.once("exit", () => resolve()));
        child.stdout!.on("data", (d) => member.log.push(String(d)));
        child.stderr!.on("data", (d) => member.log.push(String(d)));
    }

    async function monitor(member: NatsMember, what: string): Promise<any> {
        return (await fetch(`http://127.0.0.1:${member.node.ports.monitor}${what}`, { signal: AbortSignal.timeout(2000) })).json();
    }

    /**
     * Every route connection as remote#id, sorted: a route that dropped and
     * came back gets a new id. A server keeps a pool of connections to each
     * peer (nats-server's route pooling), so there are several per remote.
     */
    async function routes(member: NatsMember): Promise<string[]> {
        const routez = await monitor(member, "/routez");
        return (routez.routes ?? []).map((r: { remote_name: string; rid: number }) => `${r.remote_name}#${r.rid}`).sort();
    }

    /**
     * Until every server has routes to every other and the route set has
     * stopped changing: nats-server opens a pool of route connections per
     * remote one after another, so the first route to each is not yet the
     * set a later comparison must find unchanged.
     */
    async function waitRouted(cluster: NatsMember[]): Promise<void> {
        const STABLE_SAMPLES = 4;
        let last = "";
        let stable = 0;
        await waitFor("every server routed to every other, the route set settled", async () => {
            const all = await Promise.all(cluster.map(routes));
            const complete = all.every((r, i) => cluster.every((m, j) => i === j || r.some((route) => route.startsWith(`${m.node.hostname}#`))));
            const seen = JSON.stringify(all);
            stable = complete && seen === last ? stable + 1 : 0;
            last = seen;
            return stable >= STABLE_SAMPLES;
        }, 30_000, 250);
    }

    async function reload(member: NatsMember): Promise<void> {
        const mark = member.log.join("").length;
        member.child!.kill("SIGHUP");
        await waitFor(`${member.node.hostname} to reload`, async () => /Reloaded server configuration/.test(member.log.join("").slice(mark)), 10_000, 50);
        assert.doesNotMatch(member.log.join("").slice(mark), /Failed to reload|reload.*error/i);
    }

    /** The serial of the certificate a new client connection is shown (INFO in plaintext, then TLS). */
    function servedSerial(member: NatsMember): Promise<string> {
        return new Promise((resolve, reject) => {
            const socket = net.connect(member.node.ports.client, member.node.wgAddress);
            socket.once("error", reject);
            socket.once("data", () => {
                const secure = tls.connect({ socket, ca: clientCa.certPem, cert: client.certPem, key: client.keyPem, servername: serviceName });
                secure.once("secureConnect", () => {
                    resolve(secure.getPeerCertificate().serialNumber.toUpperCase().replace(/^0+/, ""));
                    secure.destroy();
                });
                secure.once("error", reject);
            });
        });
    }

    it("first certificates and routes from the agent start a cluster; a renewal (same keys, new serials) is reloaded with a client and every route staying connected", async () => {
        const cluster = [await addServer(), await addServer(), await addServer()];
        await publishAndApply(cluster, cluster);
        for (const member of cluster) {
            assert.strictEqual(fs.statSync(path.join(member.agent.root, NATS_NODE_LAYOUT.configDir, NATS_CLUSTER_ROUTES_FILE)).mode & 0o777, 0o600);
            start(member);
        }
        await waitRouted(cluster);

        const nc = await connect({
            servers: [`tls://${cluster[0].node.wgAddress}:${cluster[0].node.ports.client}`],
            tls: { ca: clientCa.certPem, cert: client.certPem, key: client.keyPem, servername: serviceName },
            timeout: 3000, reconnectTimeWait: 200, maxReconnectAttempts: -1,
        });
        const events: string[] = [];
        (async () => {
            for await (const s of nc.status()) events.push(s.type);
        })();
        try {
            const routesBefore = await Promise.all(cluster.map(routes));
            const countsBefore = await Promise.all(cluster.map(async (m) => (await monitor(m, "/routez")).num_routes));
            const oldSerials = cluster.map((m) => ({ ...m.serials }));
            for (const member of cluster) assert.strictEqual(await servedSerial(member), member.serials.server);

            await publishAndApply(cluster, cluster);
            for (const [i, member] of cluster.entries()) {
                assert.notStrictEqual(member.serials.server, oldSerials[i].server);
                const installed = await openssl("x509", "-in", path.join(member.tlsDir, NATS_TLS_FILES.routeCert), "-noout", "-serial");
                assert.strictEqual(installed.trim(), `serial=${member.serials.route}`);
                await reload(member);
            }
            for (const member of cluster) assert.strictEqual(await servedSerial(member), member.serials.server, "a new connection is shown the old certificate");
            assert.deepStrictEqual(await Promise.all(cluster.map(routes)), routesBefore, "a route dropped during the reload");
            assert.deepStrictEqual(await Promise.all(cluster.map(async (m) => (await monitor(m, "/routez")).num_routes)), countsBefore);
            await nc.flush();
            assert.deepStrictEqual(events.filter((e) => /disconnect|reconnect/.test(e)), [], "the client was disconnected");
        } finally {
            await nc.close();
        }
    });

    it("a certificate for another node's key, or from another CA, is refused and nothing is installed", async () => {
        const [a, b] = servers;
        const cluster = servers;
        const installed = fs.readFileSync(path.join(a.tlsDir, NATS_TLS_FILES.serverCert), "utf8");
        const good = await desiredFor(a, cluster);
        const otherKey = { ...good, certificates: { ...good.certificates, [NATS_TLS_FILES.serverCert]: fs.readFileSync(path.join(work, `${b.node.hostname}-server.crt`), "utf8") } };
        await channel.write(a.agent.params.key, otherKey);
        await assert.rejects(a.agent.runOnce({ env: { MESHSTACK_AGENT_SKIP_SERVICES: "1" } }));
        assert.match(a.agent.log(), /refused: server\.crt is not for this node's key server\.key\n$/);
        // Signed for this node's key, but by the route CA: it does not chain to the client CA beside it.
        const strayCert = (await openssl("x509", "-req", "-in", path.join(work, `${a.node.hostname}-server.csr`), "-CA", routeCa.certFile, "-CAkey", routeCa.keyFile,
            "-set_serial", "0x7777", "-days", "1", "-extfile", path.join(work, `${a.node.hostname}-server.ext`)));
        await channel.write(a.agent.params.key, { ...good, certificates: { ...good.certificates, [NATS_TLS_FILES.serverCert]: strayCert } });
        await assert.rejects(a.agent.runOnce({ env: { MESHSTACK_AGENT_SKIP_SERVICES: "1" } }));
        assert.match(a.agent.log(), /refused: server\.crt does not chain to client-ca\.crt\n$/);
        assert.strictEqual(fs.readFileSync(path.join(a.tlsDir, NATS_TLS_FILES.serverCert), "utf8"), installed);
    });

    it("scale-out: the route lists of the running servers gain a 4th and 5th server's routes by reload", async () => {
        const cluster = [...servers, await addServer(), await addServer()];
        const old = cluster.slice(0, 3);
        const routesBefore = await Promise.all(old.map(routes));
        await publishAndApply(cluster, cluster);
        for (const member of old) await reload(member);
        for (const member of cluster.slice(3)) start(member);
        await waitRouted(cluster);
        for (const member of old) {
            const varz = await monitor(member, "/varz");
            const configured = (varz.cluster.urls as string[]).map((u) => u.replace(/^.*@/, "")).sort();
            assert.deepStrictEqual(configured, natsRouteAddresses(member.node, cluster.map((m) => m.node)).sort());
        }
        const routesAfter = await Promise.all(old.map(routes));
        for (const [i, before] of routesBefore.entries()) {
            for (const route of before) assert.ok(routesAfter[i].includes(route), `route ${old[i].node.hostname} -> ${route} was re-made`);
            assert.ok(routesAfter[i].length > before.length, `${old[i].node.hostname} has no routes to the new servers`);
        }
    });
});
