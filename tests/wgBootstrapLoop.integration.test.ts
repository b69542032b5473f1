/**
 * The hub's bootstrap loop, for real on this machine: the first-boot
 * script exactly as the cloud-config carries it, run in a temp root with the
 * real `wg`, uploads through a presigned PUT (signed by the serialized
 * PresignedUrl provider) to MinIO, while the serialized poll provider waits
 * for the key in its own host process.
 *
 * Bringing up wg0 needs systemd and the wireguard kernel module, which this
 * machine lacks (`ip link add type wireguard` fails), so the tests set
 * MESHSTACK_WG_SKIP_INTERFACE=1; the wg0.conf the script writes is checked
 * with wg-quick's own parser instead, and its routing hooks run in a network
 * namespace of their own, on a veth named wg0.
 */
import * as assert from "assert";
import { execFile, execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { parse } from "yaml";
import {
    renderWgCacheCloudConfig, WG_BOOTSTRAP_LOG_PATH, WG_BOOTSTRAP_SCRIPT_PATH, WG_HUB_SYSCTL_PATH, WG_ROOT_ENV, WG_SKIP_INTERFACE_ENV,
} from "../cloudinit/wgCache";
import { wgPublicKeyFromPrivate, WgSpokePeer } from "../cloudinit/wgMesh";
import { PresignedUrl, PresignedUrlInputs } from "../providers/presignedUrl";
import { PollPolicy, WgPubkeyPoll, WgPubkeyPollInputs } from "../providers/wgPubkeyPoll";
import { captureDynamicResource, ProviderHost } from "./harness/dynamicProviders";
import { MinioServer } from "./support/minio";
import { toolPath } from "./support/tools";
import { assertValidCloudConfig } from "./support/cloudInit";

const run = promisify(execFile);
const BUCKET = "wg-loop-tests";
const POLICY: PollPolicy = {
    initialDelayMs: 100, multiplier: 1.5, maxIntervalMs: 300, jitter: 0.2, timeoutMs: 30_000, authGraceMs: 2_000, requestTimeoutMs: 2_000,
};

async function until(what: string, probe: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!probe()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 25));
    }
}

describe("WireGuard bootstrap loop: rendered script -> presigned PUT -> MinIO <- serialized poll provider", function () {
    this.timeout(90_000);
    let minio: MinioServer;
    let work: string;
    let presignHost: ProviderHost;
    let pollHost: ProviderHost;
    let presignInputs: PresignedUrlInputs;
    let pollInputs: WgPubkeyPollInputs;
    let caseCounter = 0;

    before(async () => {
        minio = await MinioServer.start();
        await minio.createBucket(BUCKET);
        work = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-wg-loop-"));
        const common = {
            endpoint: minio.endpoint, region: minio.region, bucket: BUCKET, key: "placeholder",
            accessKeyId: minio.credentials.accessKeyId, secretAccessKey: minio.credentials.secretAccessKey,
        };
        const presign = await captureDynamicResource(() => new PresignedUrl("loop-put", { ...common, method: "PUT", expiresInSeconds: 600 }));
        const poll = await captureDynamicResource(
            () =>
                new WgPubkeyPoll("loop-poll", {
                    ...common, instanceId: "20001", nodeLabel: "meshstack-test-cache-node-loop01", nodeAddress: "203.0.113.10",
                    bootstrapLogPath: WG_BOOTSTRAP_LOG_PATH, policy: POLICY,
                }),
        );
        presignInputs = presign.inputs as PresignedUrlInputs;
        pollInputs = poll.inputs as WgPubkeyPollInputs;
        presignHost = await ProviderHost.start(presign.serializedProvider);
        pollHost = await ProviderHost.start(poll.serializedProvider);
    });

    after(async () => {
        await presignHost?.close();
        await pollHost?.close();
        await minio?.stop();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    /** A node's worth of state: object key, presigned PUT, rendered cloud-config, the script extracted from it, a temp root. */
    async function prepareNode(spokes: WgSpokePeer[] = []) {
        const n = ++caseCounter;
        const key = `bootstrap/wg/test/cache/${n}/pubkey`;
        const put = await presignHost.checkAndCreate({ ...presignInputs, key, method: "PUT" });
        const cloudConfig = renderWgCacheCloudConfig({ pubkeyPutUrl: put.outs.url, listenPort: 51820, address: "10.44.0.1/24", subnet: "10.44.0.0/24", spokes });
        const file = (parse(cloudConfig).write_files as { path: string; permissions: string; content: string }[]).find(
            (f) => f.path === WG_BOOTSTRAP_SCRIPT_PATH,
        )!;
        const dir = path.join(work, `node-${n}`);
        const root = path.join(dir, "root");
        fs.mkdirSync(root, { recursive: true });
        const script = path.join(dir, path.basename(file.path));
        fs.writeFileSync(script, file.content, { mode: parseInt(file.permissions, 8) });
        return {
            key, cloudConfig, script, root, url: put.outs.url as string,
            privateKey: path.join(root, "etc/wireguard/privatekey"),
            conf: path.join(root, "etc/wireguard/wg0.conf"),
            sysctl: path.join(root, WG_HUB_SYSCTL_PATH),
            log: path.join(root, WG_BOOTSTRAP_LOG_PATH),
        };
    }

    function runScript(node: { script: string; root: string }, env: NodeJS.ProcessEnv = { PATH: process.env.PATH }) {
        return run(node.script, [], { env: { ...env, [WG_ROOT_ENV]: node.root, [WG_SKIP_INTERFACE_ENV]: "1" }, timeout: 60_000 });
    }

    it("publishes exactly the key `wg pubkey` derives from the private key it wrote, while the poll waits; a re-run keeps the key", async () => {
        const node = await prepareNode();
        await assertValidCloudConfig(node.cloudConfig, work);

        const mark = pollHost.logs.length;
        const polling = pollHost.checkAndCreate({ ...pollInputs, key: node.key });
        await until("the poll to be waiting", () => pollHost.logs.slice(mark).some((l) => /not published yet/.test(l)));
        await runScript(node);
        const { outs } = await polling;

        const derived = execFileSync(toolPath("wg"), ["pubkey"], { input: fs.readFileSync(node.privateKey) }).toString().trim();
        assert.strictEqual(outs.publicKey, derived);
        assert.strictEqual(fs.statSync(node.privateKey).mode & 0o777, 0o600);
        assert.strictEqual(fs.statSync(path.dirname(node.privateKey)).mode & 0o777, 0o700);

        const firstPrivateKey = fs.readFileSync(node.privateKey, "utf8");
        await runScript(node);
        assert.strictEqual(fs.readFileSync(node.privateKey, "utf8"), firstPrivateKey);
        assert.strictEqual((await minio.getObject(BUCKET, node.key))?.toString().trim(), derived);
        const again = await pollHost.checkAndCreate({ ...pollInputs, key: node.key, instanceId: "20001" });
        assert.strictEqual(again.outs.publicKey, derived);
    });

    it("logs every step to the bootstrap log, and never the presigned URL", async () => {
        const node = await prepareNode();
        await runScript(node);
        await runScript(node);
        const log = fs.readFileSync(node.log, "utf8");
        for (const step of [
            /wireguard-tools present: wireguard-tools v/,
            /generating a keypair/,
            /public key: [A-Za-z0-9+/]{43}=/,
            /wrote .*wg0\.conf \(address 10\.44\.0\.1\/24, udp\/51820\)/,
            /MESHSTACK_WG_SKIP_INTERFACE=1: not bringing up wg0/,
            /published the public key/,
            /keeping the existing private key/,
        ]) {
            assert.match(log, step);
        }
        assert.strictEqual(log.match(/: done$/gm)?.length, 2);
        assert.ok(!log.includes("X-Amz-Signature"), "the bootstrap log leaks the presigned URL");
    });

    it("writes a wg0.conf that wg-quick parses, on the configured port and address, without a copy of the private key", async () => {
        const node = await prepareNode();
        await runScript(node);
        const conf = fs.readFileSync(node.conf, "utf8");
        assert.doesNotMatch(conf, /PrivateKey/);
        assert.match(conf, /^Address = 10\.44\.0\.1\/24$/m);
        assert.match(conf, new RegExp(`^PostUp = wg set %i private-key ${node.privateKey}$`, "m"));
        assert.strictEqual(fs.statSync(node.conf).mode & 0o777, 0o600);
        const { stdout } = await run(toolPath("wg-quick"), ["strip", node.conf]);
        assert.strictEqual(stdout.trim(), "[Interface]\nListenPort = 51820");
    });

    const spokes: WgSpokePeer[] = [10, 11, 12].map((host, i) => ({
        name: `meshstack-test-${i}`, address: `10.44.0.${host}`,
        publicKey: wgPublicKeyFromPrivate(execFileSync(toolPath("wg"), ["genkey"]).toString().trim()),
    }));

    it("with spokes: the cloud-config stays valid and wg0.conf lists exactly one [Peer] per spoke, its key and /32, as wg-quick parses it", async () => {
        const node = await prepareNode(spokes);
        await assertValidCloudConfig(node.cloudConfig, work);
        await runScript(node);
        const { stdout } = await run(toolPath("wg-quick"), ["strip", node.conf]);
        const peers = spokes.map((s) => `[Peer]\nPublicKey = ${s.publicKey}\nAllowedIPs = ${s.address}/32`).join("\n\n");
        const withoutComments = stdout.split("\n").filter((l) => !l.startsWith("#")).join("\n");
        assert.strictEqual(withoutComments.trim(), `[Interface]\nListenPort = 51820\n\n${peers}`);
        assert.match(fs.readFileSync(node.log, "utf8"), /wg0 accepts 3 spoke\(s\) in 10\.44\.0\.0\/24/);
    });

    it("turns on forwarding for wg0 alone in a sysctl drop-in that wg0's PostUp applies", async () => {
        const node = await prepareNode(spokes);
        await runScript(node);
        const settings = fs.readFileSync(node.sysctl, "utf8").split("\n").filter((l) => l && !l.startsWith("#"));
        assert.deepStrictEqual(settings, [
            "net.ipv4.conf.wg0.forwarding = 1", "net.ipv4.conf.all.send_redirects = 0", "net.ipv4.conf.wg0.send_redirects = 0",
        ]);
        assert.doesNotMatch(fs.readFileSync(node.sysctl, "utf8"), /ip_forward|conf\.all\.forwarding/);
        assert.match(fs.readFileSync(node.conf, "utf8"), new RegExp(`^PostUp = sysctl -q -p ${node.sysctl}$`, "m"));
    });

    it("routing hooks, run as wg-quick runs them in a network namespace: wg0 forwards into the subnet only, nothing else forwards, PostDown cleans up", async () => {
        const node = await prepareNode(spokes);
        await runScript(node);
        const conf = fs.readFileSync(node.conf, "utf8");
        // wg-quick substitutes %i and evals each hook; `wg set` needs a real WireGuard interface, the rest runs on the veth.
        const hooks = (kind: string) => [...conf.matchAll(new RegExp(`^${kind} = (.*)$`, "gm"))]
            .map((m) => m[1].replace(/%i/g, "wg0"))
            .filter((hook) => !hook.startsWith("wg "))
            .map((hook) => `(eval '${hook.replace(/'/g, `'\\''`)}')`);
        const probe = (label: string, args: string) => `echo "${label}: $(ip route get ${args} 2>&1 | tr -s '\\n ' ' ')"`;
        const script = [
            "set -euo pipefail",
            "ip link add wg0 type veth peer name wg0-end",
            "ip link add eth0 type veth peer name eth0-end",
            "for dev in wg0 wg0-end eth0 eth0-end; do ip link set \"$dev\" up; done",
            "ip addr add 10.44.0.1/24 dev wg0",
            "ip addr add 192.0.2.10/24 dev eth0",
            "ip route add default via 192.0.2.1 dev eth0",
            ...hooks("PostUp"),
            probe("spoke-to-spoke", "10.44.0.11 from 10.44.0.10 iif wg0"),
            probe("spoke-to-internet", "198.51.100.7 from 10.44.0.10 iif wg0"),
            probe("public-to-spoke", "10.44.0.11 from 192.0.2.77 iif eth0"),
            "echo \"forwarding: $(cat /proc/sys/net/ipv4/conf/all/forwarding) $(cat /proc/sys/net/ipv4/conf/eth0/forwarding) $(cat /proc/sys/net/ipv4/conf/wg0/forwarding)\"",
            "echo \"rules-up: $(ip -4 rule show | grep -c '^3100[01]:')\"",
            ...hooks("PostDown"),
            "echo \"rules-down: $(ip -4 rule show | grep -c '^3100[01]:' || true)\"",
        ].join("\n");
        const { stdout } = await run(toolPath("unshare"), ["--net", "bash", "-c", script], { timeout: 30_000 });
        const result = Object.fromEntries(stdout.trim().split("\n").map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)]));
        assert.match(result["spoke-to-spoke"], /^10\.44\.0\.11 from 10\.44\.0\.10 dev wg0\b/);
        assert.doesNotMatch(result["spoke-to-spoke"], /redirect/, "the hub would send ICMP redirects between spokes");
        assert.match(result["spoke-to-internet"], /Network is unreachable/);
        assert.match(result["public-to-spoke"], /No route to host/);
        assert.strictEqual(result.forwarding, "0 0 1", "all, eth0, wg0");
        assert.strictEqual(result["rules-up"], "2");
        assert.strictEqual(result["rules-down"], "0");
    });

    it("installs wireguard-tools with apt-get only when wg is missing", async () => {
        const node = await prepareNode();
        // A PATH holding only what the script needs, minus wg; the apt-get stub
        // records its arguments and "installs" wg by linking the real one in.
        const bin = path.join(node.root, "..", "bin");
        fs.mkdirSync(bin);
        for (const tool of ["mkdir", "dirname", "date", "tee", "cat", "chmod", "mv", "curl", "sleep", "ln"]) {
            fs.symlinkSync(toolPath(tool), path.join(bin, tool));
        }
        const aptLog = path.join(node.root, "..", "apt-get.calls");
        fs.writeFileSync(
            path.join(bin, "apt-get"),
            `#!/bin/bash\necho "$*" >>'${aptLog}'\nif [[ " $* " == *" install "* ]]; then ln -sf '${toolPath("wg")}' '${bin}/wg'; fi\n`,
            { mode: 0o755 },
        );
        await runScript(node, { PATH: bin });
        const calls = fs.readFileSync(aptLog, "utf8").trim().split("\n");
        assert.strictEqual(calls.length, 2);
        assert.match(calls[0], /update/);
        assert.match(calls[1], /install -y -q --no-install-recommends wireguard-tools$/);
        assert.match(fs.readFileSync(node.log, "utf8"), /wg not found; installing wireguard-tools/);
        assert.ok((await minio.getObject(BUCKET, node.key)) !== undefined, "the key was not published after installing");

        await runScript(node, { PATH: bin });
        assert.strictEqual(fs.readFileSync(aptLog, "utf8").trim().split("\n").length, 2, "apt-get ran although wg was present");
    });
});
