/**
 * The first boot every member runs (cloudinit/nodeBootstrap.ts), relocated
 * into a temp dir (MESHSTACK_NODE_ROOT) without bringing wg0 up, publishing
 * through a real presigned PUT to MinIO: what lands in the bucket is what
 * the deploy's poll accepts, and no private key leaves the node.
 */
import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { NODE_BOOTSTRAP_LOG_PATH, renderNodeBootstrapScript, wgInterfaceSection } from "../../cloudinit/nodeBootstrap";
import { natsRouteCertProfile, opensslRequestConfig } from "../../cloudinit/natsCerts";
import { WG_CONF_PATH, WG_PRIVATE_KEY_PATH } from "../../cloudinit/wgMesh";
import { meshTopology } from "../../lib/topology";
import { publishedMaterialProblems } from "../../lib/runtimeChannel";
import { presignObjectUrl } from "../../providers/s3";
import { MinioServer } from "../support/minio";
import { toolPath } from "../support/tools";

const BUCKET = "node-bootstrap-tests";
const node = meshTopology({ hubInterfaceAddress: "10.44.0.1/24", natsNodeCount: 3, clusterName: "meshstack-dev" }).nats[1];

describe("node first boot (bash, relocated, publishing to MinIO)", function () {
    this.timeout(60_000);
    let minio: MinioServer;
    let dir: string;
    let counter = 0;
    before(async () => {
        minio = await MinioServer.start();
        await minio.createBucket(BUCKET);
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-node-bootstrap-"));
    });
    after(async () => {
        await minio?.stop();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    async function boot(key: string, root: string, instanceId: string) {
        const location = { endpoint: minio.endpoint, region: minio.region, bucket: BUCKET, key };
        const publishPutUrl = await presignObjectUrl(location, minio.credentials, "PUT", 600, new Date());
        const script = renderNodeBootstrapScript({
            node: node.hostname, publishPutUrl, listenPort: 51820, address: `${node.wgAddress}/24`, subnet: "10.44.0.0/24",
            interfaceSection: wgInterfaceSection({ address: `${node.wgAddress}/24`, listenPort: 51820 }),
            certificateRequests: [{ name: "route", keyPath: "/etc/nats/tls/route.key", owner: "nats:nats", requestConfig: opensslRequestConfig(natsRouteCertProfile(node)) }],
        });
        const file = path.join(root, "bootstrap.sh");
        fs.writeFileSync(file, script, { mode: 0o700 });
        // wg from the project's tools first, as on a node where the package is installed.
        const env = { ...process.env, PATH: `${path.dirname(toolPath("wg"))}:${process.env.PATH}`, MESHSTACK_NODE_ROOT: root, MESHSTACK_NODE_SKIP_INTERFACE: "1", MESHSTACK_INSTANCE_ID: instanceId };
        return spawnSync("bash", [file], { env, encoding: "utf8" });
    }
    const fresh = () => {
        const root = path.join(dir, `node-${++counter}`);
        fs.mkdirSync(root);
        return { root, key: `published/test/${node.hostname}/g${counter}.json` };
    };

    it("publishes material the deploy's poll accepts: this node, this instance, its WireGuard key and a CSR for its own key", async () => {
        const { root, key } = fresh();
        const result = await boot(key, root, "4711");
        assert.strictEqual(result.status, 0, result.stderr);
        const doc = JSON.parse((await minio.getObject(BUCKET, key))!.toString("utf8"));
        assert.deepStrictEqual(publishedMaterialProblems(doc, { node: node.hostname, instanceId: "4711", requestNames: ["route"] }), []);
        const privateKey = fs.readFileSync(path.join(root, WG_PRIVATE_KEY_PATH), "utf8");
        assert.strictEqual(doc.wgPublicKey, execFileSync(toolPath("wg"), ["pubkey"], { input: privateKey }).toString().trim());
        const csrKey = execFileSync("openssl", ["req", "-noout", "-pubkey"], { input: doc.certificateRequests.route }).toString();
        const ownKey = execFileSync("openssl", ["pkey", "-pubout", "-in", path.join(root, "etc/nats/tls/route.key")]).toString();
        assert.strictEqual(csrKey, ownKey);
        assert.match(execFileSync("openssl", ["req", "-noout", "-text"], { input: doc.certificateRequests.route }).toString(), /DNS:meshstack-dev-1, IP Address:10\.44\.0\.11/);
    });

    it("keeps every private key on the node, 0600, and out of what it publishes and logs", async () => {
        const { root, key } = fresh();
        assert.strictEqual((await boot(key, root, "4711")).status, 0);
        const published = (await minio.getObject(BUCKET, key))!.toString("utf8");
        const wgKey = fs.readFileSync(path.join(root, WG_PRIVATE_KEY_PATH), "utf8").trim();
        const log = fs.readFileSync(path.join(root, NODE_BOOTSTRAP_LOG_PATH), "utf8");
        for (const file of [WG_PRIVATE_KEY_PATH, "/etc/nats/tls/route.key"]) assert.strictEqual(fs.statSync(path.join(root, file)).mode & 0o777, 0o600, file);
        assert.ok(!published.includes(wgKey) && !log.includes(wgKey));
        assert.doesNotMatch(published, /PRIVATE KEY/);
        assert.doesNotMatch(log, /X-Amz-Signature/, "the presigned URL is a credential");
    });

    it("writes wg0.conf with the [Interface] only: peers come through the agent", async () => {
        const { root, key } = fresh();
        assert.strictEqual((await boot(key, root, "4711")).status, 0);
        const conf = fs.readFileSync(path.join(root, WG_CONF_PATH), "utf8");
        assert.strictEqual(conf, `# meshstack WireGuard (rendered by meshstack; the agent adds the peers).\n${wgInterfaceSection({ address: "10.44.0.11/24", listenPort: 51820 })}`);
    });

    it("keeps its keys on a re-run (cloud-init may run it again) and publishes the same public material", async () => {
        const { root, key } = fresh();
        assert.strictEqual((await boot(key, root, "4711")).status, 0);
        const first = JSON.parse((await minio.getObject(BUCKET, key))!.toString("utf8"));
        const rerun = await boot(key, root, "4711");
        assert.strictEqual(rerun.status, 0, rerun.stderr);
        const second = JSON.parse((await minio.getObject(BUCKET, key))!.toString("utf8"));
        assert.strictEqual(second.wgPublicKey, first.wgPublicKey);
        assert.match(fs.readFileSync(path.join(root, NODE_BOOTSTRAP_LOG_PATH), "utf8"), /keeping the existing WireGuard key[^]*keeping the existing route key/);
    });

    it("fails, logging why, when the store refuses the upload", async () => {
        const { root } = fresh();
        const location = { endpoint: minio.endpoint, region: minio.region, bucket: BUCKET, key: "published/test/x/g.json" };
        const url = await presignObjectUrl(location, { ...minio.credentials, secretAccessKey: "wrong-secret-000000000000" }, "PUT", 600, new Date());
        // A node retries a refused upload for minutes (a new key propagating); one answer is enough here.
        const script = renderNodeBootstrapScript({
            node: "wg-cache", publishPutUrl: url, listenPort: 51820, address: "10.44.0.1/24", subnet: "10.44.0.0/24",
            interfaceSection: wgInterfaceSection({ address: "10.44.0.1/24", listenPort: 51820 }),
        }).replace("--retry 10 ", "--retry 0 ");
        assert.ok(script.includes("--retry 0 "));
        const file = path.join(root, "bootstrap.sh");
        fs.writeFileSync(file, script);
        const result = spawnSync("bash", [file], {
            env: { ...process.env, PATH: `${path.dirname(toolPath("wg"))}:${process.env.PATH}`, MESHSTACK_NODE_ROOT: root, MESHSTACK_NODE_SKIP_INTERFACE: "1", MESHSTACK_INSTANCE_ID: "1" }, encoding: "utf8",
        });
        assert.strictEqual(result.status, 1);
        assert.match(fs.readFileSync(path.join(root, NODE_BOOTSTRAP_LOG_PATH), "utf8"), /publishing failed: .*403/);
    });
});
