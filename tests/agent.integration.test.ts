/**
 * The node agent on real software: the rendered agent (script, renderer,
 * the read-only key's curl config) fetches its desired state from MinIO with
 * curl's SigV4 and applies it.
 *
 * - What a node can read: the agents' key reads the runtime bucket and
 *   nothing else; it can neither read a bootstrap object nor write a
 *   desired state.
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
import { ChildProcess, execFile, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { AgentParams } from "../cloudinit/agent";
import { wgInterfaceSection } from "../cloudinit/nodeBootstrap";
import { desiredStateKey, DesiredState, DesiredPeer } from "../lib/runtimeChannel";
import { signedObjectRequest } from "../providers/s3";
import { AgentNode } from "./support/agentNode";
import { BOOTSTRAP_BUCKET, RUNTIME_BUCKET, RuntimeChannel } from "./support/runtimeChannel";
import { waitFor } from "./support/ports";
import { toolPath } from "./support/tools";

const run = promisify(execFile);
const STACK = "test";
const SUBNET = "10.44.0.0/24";
const LAN_PREFIX = "192.168.77";
const WG_PORT = 51820;

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
            assert.match(member.agent.log(), new RegExp(`applied desired state [0-9a-f]{64}: ${set.length - 1} peer\\(s\\)\\n$`));
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

    it("an unchanged desired state costs one GET and changes nothing", async () => {
        const a = members[0];
        const before = a.agent.log();
        const index = await ifindex(a);
        await a.agent.runOnce({ prefix: a.ns.enter });
        assert.strictEqual(a.agent.log(), before);
        assert.strictEqual(await ifindex(a), index);
    });
});
