/**
 * The first boot, for real on this machine: the rendered first-boot script
 * (the hub's, and a NATS node's with its certificate requests) runs in a
 * temp root with the real `wg` and `openssl`, publishes through a presigned
 * PUT signed by the serialized PresignedUrl provider to MinIO, while the
 * serialized poll provider waits for the document in its own host process.
 * The script's `systemctl enable --now wg-quick@wg0` needs systemd, so
 * MESHSTACK_NODE_SKIP_INTERFACE=1; what that unit runs, `wg-quick up wg0`
 * on the wg0.conf the script wrote, runs here in a network and mount
 * namespace of its own, with wireguard-go (the host kernel has no wireguard
 * module) and the temp root's /etc/wireguard and /etc/sysctl.d bound where
 * the node has them.
 */
import * as assert from "assert";
import { execFile, execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { NODE_BOOTSTRAP_LOG_PATH, NODE_ROOT_ENV, NODE_SKIP_INTERFACE_ENV, INSTANCE_ID_ENV, renderNodeBootstrapScript, wgInterfaceSection } from "../../cloudinit/nodeBootstrap";
import { NATS_NODE_LAYOUT, natsTlsPath } from "../../cloudinit/nats";
import { natsRouteCertProfile, natsServerCertProfile, opensslRequestConfig } from "../../cloudinit/natsCerts";
import { requestedIdentity } from "../../lib/certRequest";
import { renderWgBootstrapScript } from "../../cloudinit/wgCache";
import { WG_PRIVATE_KEY_PATH } from "../../cloudinit/wgMesh";
import { publishedMaterialKey } from "../../lib/runtimeChannel";
import { NatsNode } from "../../lib/topology";
import { PresignedUrl, PresignedUrlInputs } from "../../providers/presignedUrl";
import { PollPolicy, WgPubkeyPoll, WgPubkeyPollInputs } from "../../providers/wgPubkeyPoll";
import { captureDynamicResource, ProviderHost } from "../harness/dynamicProviders";
import { MinioServer } from "../support/minio";
import { toolPath } from "../support/tools";

const run = promisify(execFile);
const BUCKET = "meshstack-test-runtime";
const STACK = "test";
const POLICY: PollPolicy = {
    initialDelayMs: 100, multiplier: 1.5, maxIntervalMs: 300, jitter: 0.2, timeoutMs: 30_000, authGraceMs: 2_000, requestTimeoutMs: 2_000,
};
const NATS_NODE: NatsNode = {
    index: 1, hostname: "meshstack-test-nats-1", dnsName: "nats-1.mesh.example.net", wgAddress: "10.44.0.11",
    ports: { client: 4222, route: 6222, monitor: 8222 },
};

async function until(what: string, probe: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!probe()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 25));
    }
}

/** Every object in the bucket, by key. */
async function allObjects(minio: MinioServer, bucket: string): Promise<Map<string, string>> {
    const keys = await minio.listKeys(bucket);
    const objects = new Map<string, string>();
    for (const key of keys) objects.set(key, String(await minio.getObject(bucket, key)));
    return objects;
}

describe("first boot: rendered node bootstrap -> presigned PUT -> MinIO <- serialized poll provider", function () {
    this.timeout(120_000);
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
        work = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-first-boot-"));
        const common = {
            endpoint: minio.endpoint, region: minio.region, bucket: BUCKET, key: "placeholder",
            accessKeyId: minio.credentials.accessKeyId, secretAccessKey: minio.credentials.secretAccessKey,
        };
        const presign = await captureDynamicResource(() => new PresignedUrl("boot-put", { ...common, method: "PUT", expiresInSeconds: 600 }));
        const poll = await captureDynamicResource(
            () =>
                new WgPubkeyPoll("boot-poll", {
                    ...common, node: "placeholder", instanceId: "20001", expectedRequests: {}, nodeLabel: "meshstack-test-node-boot01", nodeAddress: "203.0.113.10",
                    bootstrapLogPath: NODE_BOOTSTRAP_LOG_PATH, policy: POLICY,
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

    /** A node's worth of state: its object key, its presigned PUT, the rendered script, a temp root. */
    async function prepareNode(render: (publishPutUrl: string) => string, node: string) {
        const n = ++caseCounter;
        const key = publishedMaterialKey(STACK, node, `gen${n}`);
        const put = await presignHost.checkAndCreate({ ...presignInputs, key, method: "PUT" });
        const dir = path.join(work, `node-${n}`);
        const root = path.join(dir, "root");
        fs.mkdirSync(root, { recursive: true });
        const script = path.join(dir, "meshstack-node-bootstrap");
        fs.writeFileSync(script, render(put.outs.url), { mode: 0o700 });
        return { key, node, script, root, instanceId: `3000${n}`, log: path.join(root, NODE_BOOTSTRAP_LOG_PATH), privateKey: path.join(root, WG_PRIVATE_KEY_PATH) };
    }

    function runScript(node: { script: string; root: string; instanceId: string }) {
        return run(node.script, [], {
            env: { PATH: process.env.PATH, [NODE_ROOT_ENV]: node.root, [NODE_SKIP_INTERFACE_ENV]: "1", [INSTANCE_ID_ENV]: node.instanceId },
            timeout: 60_000,
        });
    }

    const derivedPublicKey = (privateKeyFile: string) => execFileSync(toolPath("wg"), ["pubkey"], { input: fs.readFileSync(privateKeyFile) }).toString().trim();

    async function assertNoPrivateKeyInBucket(privateKeys: string[]) {
        const objects = await allObjects(minio, BUCKET);
        assert.ok(objects.size > 0, "the bucket is empty: nothing was published");
        for (const [key, body] of objects) {
            assert.doesNotMatch(body, /PRIVATE KEY/, `${key} holds PEM private key material`);
            for (const secret of privateKeys) assert.ok(!body.includes(secret), `${key} holds a private key of the node`);
        }
    }

    it("hub: publishes exactly the key `wg pubkey` derives, while the poll waits; no private key in the bucket; a re-run keeps the key", async () => {
        const hubName = "meshstack-test-wg-cache";
        const node = await prepareNode(
            (url) => renderWgBootstrapScript({ node: hubName, publishPutUrl: url, listenPort: 51820, address: "10.44.0.1/24", subnet: "10.44.0.0/24" }),
            hubName,
        );
        const mark = pollHost.logs.length;
        const polling = pollHost.checkAndCreate({ ...pollInputs, key: node.key, node: hubName, instanceId: node.instanceId, expectedRequests: {} });
        await until("the poll to be waiting", () => pollHost.logs.slice(mark).some((l) => /not published yet|not yet/i.test(l)));
        await runScript(node);
        const { outs } = await polling;

        const first = fs.readFileSync(node.privateKey, "utf8").trim();
        assert.strictEqual(outs.publicKey, derivedPublicKey(node.privateKey));
        assert.strictEqual(fs.statSync(node.privateKey).mode & 0o777, 0o600);
        await assertNoPrivateKeyInBucket([first]);

        await runScript(node);
        assert.strictEqual(fs.readFileSync(node.privateKey, "utf8").trim(), first);
        assert.match(fs.readFileSync(node.log, "utf8"), /keeping the existing WireGuard key/);
        const again = await pollHost.checkAndCreate({ ...pollInputs, key: node.key, node: hubName, instanceId: node.instanceId, expectedRequests: {} });
        assert.strictEqual(again.outs.publicKey, outs.publicKey);
        assert.ok(!fs.readFileSync(node.log, "utf8").includes("X-Amz-Signature"), "the bootstrap log leaks the presigned URL");
    });

    it("hub: wg-quick brings up the wg0.conf the first boot wrote: its key, address and port, no peers, forwarding on wg0 and the subnet rules; down removes the rules", async () => {
        const hubName = "meshstack-test-wg-cache";
        const node = await prepareNode(
            (url) => renderWgBootstrapScript({ node: hubName, publishPutUrl: url, listenPort: 51820, address: "10.44.0.1/24", subnet: "10.44.0.0/24" }),
            hubName,
        );
        await runScript(node);
        fs.mkdirSync("/run/wireguard", { recursive: true });
        const script = [
            "set -euo pipefail",
            "mount -t tmpfs tmpfs /run/wireguard",
            `mount --bind ${path.join(node.root, "etc/wireguard")} /etc/wireguard`,
            `mount --bind ${path.join(node.root, "etc/sysctl.d")} /etc/sysctl.d`,
            "ip link set lo up",
            "wg-quick up wg0 >/dev/null 2>&1",
            "echo \"key: $(wg show wg0 public-key)\"",
            "echo \"port: $(wg show wg0 listen-port)\"",
            "echo \"peers: $(wg show wg0 peers | wc -l)\"",
            "echo \"address: $(ip -4 -o addr show wg0 | awk '{print $4}')\"",
            "echo \"forwarding: $(cat /proc/sys/net/ipv4/conf/all/forwarding) $(cat /proc/sys/net/ipv4/conf/wg0/forwarding)\"",
            "echo \"rules-up: $(ip -4 rule show | grep -c '^3100[01]:')\"",
            "wg-quick down wg0 >/dev/null 2>&1",
            "echo \"rules-down: $(ip -4 rule show | grep -c '^3100[01]:' || true)\"",
        ].join("\n");
        const { stdout } = await run(toolPath("unshare"), ["--net", "--mount", "--propagation", "private", "bash", "-c", script], {
            timeout: 30_000, env: { ...process.env, WG_QUICK_USERSPACE_IMPLEMENTATION: toolPath("wireguard-go") },
        });
        const result = Object.fromEntries(stdout.trim().split("\n").map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)]));
        assert.deepStrictEqual(result, {
            key: derivedPublicKey(node.privateKey), port: "51820", peers: "0", address: "10.44.0.1/24", forwarding: "0 1", "rules-up": "2", "rules-down": "0",
        });
    });

    it("hub: a document from a previous instance is not returned; the poll waits for this instance's", async () => {
        const hubName = "meshstack-test-wg-cache";
        const node = await prepareNode(
            (url) => renderWgBootstrapScript({ node: hubName, publishPutUrl: url, listenPort: 51820, address: "10.44.0.1/24", subnet: "10.44.0.0/24" }),
            hubName,
        );
        await runScript(node);
        const stale = derivedPublicKey(node.privateKey);
        const mark = pollHost.logs.length;
        const successor = { ...node, instanceId: "49999" };
        const polling = pollHost.checkAndCreate({ ...pollInputs, key: node.key, node: hubName, instanceId: successor.instanceId, expectedRequests: {} });
        await until("the poll to refuse the predecessor's document", () => pollHost.logs.slice(mark).some((l) => /previous instance/.test(l)));
        fs.rmSync(node.privateKey);
        await runScript(successor);
        const { outs } = await polling;
        assert.strictEqual(outs.publicKey, derivedPublicKey(node.privateKey));
        assert.notStrictEqual(outs.publicKey, stale);
    });

    it("NATS node: publishes valid CSRs with the profiles' subjects and SANs for keys that stay on the node; a re-run keeps every key", async () => {
        const layout = NATS_NODE_LAYOUT;
        const requests = [
            { name: "route", keyPath: natsTlsPath(layout, "routeKey"), owner: "nats:nats", requestConfig: opensslRequestConfig(natsRouteCertProfile(NATS_NODE)) },
            { name: "server", keyPath: natsTlsPath(layout, "serverKey"), owner: "nats:nats", requestConfig: opensslRequestConfig(natsServerCertProfile(NATS_NODE, "nats.mesh.example.net")) },
        ];
        const address = `${NATS_NODE.wgAddress}/24`;
        const node = await prepareNode(
            (url) => renderNodeBootstrapScript({
                node: NATS_NODE.hostname, publishPutUrl: url, listenPort: 51820, address, subnet: "10.44.0.0/24",
                interfaceSection: wgInterfaceSection({ address, listenPort: 51820 }), certificateRequests: requests,
            }),
            NATS_NODE.hostname,
        );
        const polling = pollHost.checkAndCreate({ ...pollInputs, key: node.key, node: NATS_NODE.hostname, instanceId: node.instanceId, expectedRequests: { route: requestedIdentity(natsRouteCertProfile(NATS_NODE)), server: requestedIdentity(natsServerCertProfile(NATS_NODE, "nats.mesh.example.net")) } });
        await runScript(node);
        const { outs } = await polling;
        assert.strictEqual(outs.publicKey, derivedPublicKey(node.privateKey));

        const keyFile = (r: (typeof requests)[number]) => path.join(node.root, r.keyPath);
        const expectedSans = {
            route: ["DNS:meshstack-test-nats-1", "DNS:nats-1.mesh.example.net", "IP Address:10.44.0.11"],
            server: ["DNS:meshstack-test-nats-1", "DNS:nats-1.mesh.example.net", "DNS:nats.mesh.example.net", "IP Address:10.44.0.11"],
        } as Record<string, string[]>;
        for (const request of requests) {
            const csr = outs.requests[request.name] as string;
            const csrFile = path.join(work, `${request.name}.csr`);
            fs.writeFileSync(csrFile, csr);
            const { stdout, stderr } = await run(toolPath("openssl"), ["req", "-in", csrFile, "-noout", "-verify", "-text"]);
            assert.match(stderr + stdout, /verify OK|Certificate request self-signature verify OK/);
            assert.match(stdout, /Subject: O *= *meshstack, CN *= *meshstack-test-nats-1/);
            const sans = stdout.match(/X509v3 Subject Alternative Name:\s*\n\s*(.*)/)![1].split(", ").map((s) => s.trim());
            assert.deepStrictEqual(sans, expectedSans[request.name]);
            // The request is for the key on the node: same public key.
            const fromCsr = (await run(toolPath("openssl"), ["req", "-in", csrFile, "-noout", "-pubkey"])).stdout;
            const fromKey = (await run(toolPath("openssl"), ["pkey", "-in", keyFile(request), "-pubout"])).stdout;
            assert.strictEqual(fromCsr, fromKey);
            assert.strictEqual(fs.statSync(keyFile(request)).mode & 0o777, 0o600);
        }
        const keysBefore = requests.map((r) => fs.readFileSync(keyFile(r), "utf8"));
        const wgBefore = fs.readFileSync(node.privateKey, "utf8").trim();
        await assertNoPrivateKeyInBucket([wgBefore, ...keysBefore.map((k) => k.split("\n")[1])]);

        await runScript(node);
        assert.deepStrictEqual(requests.map((r) => fs.readFileSync(keyFile(r), "utf8")), keysBefore);
        assert.strictEqual(fs.readFileSync(node.privateKey, "utf8").trim(), wgBefore);
        assert.match(fs.readFileSync(node.log, "utf8"), /keeping the existing route key/);
        assert.match(fs.readFileSync(node.log, "utf8"), /keeping the existing server key/);
    });
});
