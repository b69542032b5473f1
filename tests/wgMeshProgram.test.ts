/**
 * The WireGuard mesh as the real program (index.ts) wires it, under the
 * mock cloud with the dev stack file: the hub lists every NATS node, every
 * NATS node dials the hub, keys match across the two sides (checked with
 * the real `wg pubkey`), and no spoke private key is ever in the clear.
 */
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { WgSpokeKeys } from "../components/wgSpokeKeys";
import { isRpcSecret, MockCloud, RecordedResource, startMockCloud, unwrapSecrets } from "../tooling/mockCloud";
import { cliStackConfigOf } from "../tooling/cliConfig";
import { instanceUserData, redactInputs } from "../tooling/plan";
import { assertValidCloudConfig } from "./support/cloudInit";
import { isSecret, resolve } from "./support/outputs";
import { toolPath } from "./support/tools";

const REPO_ROOT = path.resolve(__dirname, "..");
const NODES = [0, 1, 2];

function userData(instance: RecordedResource): string {
    const text = instanceUserData(instance)!.toString("utf8");
    assert.match(text, /^#cloud-config\n/, `${instance.name}: expected the cloud-config inline`);
    return text;
}

function writtenFile(cloudConfig: string, filePath: string): string {
    const file = (YAML.parse(cloudConfig).write_files as { path: string; content: string }[]).find((f) => f.path === filePath);
    assert.ok(file, `the cloud-config writes no ${filePath}`);
    return file.content;
}

const wgPubkey = (privateKey: string) => execFileSync(toolPath("wg"), ["pubkey"], { input: privateKey }).toString().trim();

describe("WireGuard mesh in the program (index.ts under the mock cloud, dev stack)", function () {
    this.timeout(60_000);
    let cloud: MockCloud;
    let outputs: Record<string, unknown>;
    let dir: string;
    const spokeKey = (i: number) => unwrapSecrets(cloud.byName(`nats-wg-meshstack-dev-${i}`).outputs).base64 as string;

    before(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-wgmesh-program-"));
        const cli = cliStackConfigOf(REPO_ROOT, "dev");
        if (!cli.ok) throw new Error(cli.errors.join("\n"));
        const raw = cli.raw;
        cloud = await startMockCloud({ project: "meshstack", stack: "dev", config: raw.values, secretKeys: [...raw.secretKeys] });
        outputs = await cloud.runProgram(() => ({ ...require("../index") }));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("makes one 32-byte key per NATS node, in its own component outside both the hub and the cluster", () => {
        const keys = cloud.ofType("random:index/randomBytes:RandomBytes");
        assert.deepStrictEqual(keys.map((k) => k.name).sort(), NODES.map((i) => `nats-wg-meshstack-dev-${i}`));
        for (const key of keys) {
            assert.strictEqual(unwrapSecrets(key.inputs).length, 32);
            assert.strictEqual(key.parent, "nats-wg");
        }
    });

    it("hub user-data: exactly one [Peer] per NATS node, with the key `wg pubkey` derives from that node's private key and its /32", () => {
        const conf = userData(cloud.byName("wg-cache-node-instance"));
        const peers = [...conf.matchAll(/^ *\[Peer\]\n *# (\S+)\n *PublicKey = (\S+)\n *AllowedIPs = (\S+)$/gm)].map((m) => m.slice(1));
        assert.deepStrictEqual(peers, NODES.map((i) => [`meshstack-dev-${i}`, wgPubkey(spokeKey(i)), `10.44.0.${10 + i}/32`]));
        assert.strictEqual(conf.match(/\[Peer\]/g)?.length, NODES.length);
    });

    it("NATS user-data: wg0.conf at the node's address dialling the hub's published key and public endpoint; the key file holds the node's key", async () => {
        const hubKey = outputs.wgCachePublicKey as string;
        const endpoint = outputs.wgCacheEndpoint as string;
        assert.match(endpoint, /^203\.0\.113\.\d+:51820$/);
        for (const i of NODES) {
            const cloudConfig = userData(cloud.byName(`nats-${i}-instance`));
            const conf = writtenFile(cloudConfig, "/etc/wireguard/wg0.conf");
            assert.match(conf, new RegExp(`^Address = 10\\.44\\.0\\.${10 + i}/24$`, "m"));
            const peer = conf.slice(conf.indexOf("[Peer]"));
            assert.deepStrictEqual(
                peer.split("\n").filter((l) => l && !l.startsWith("#")),
                ["[Peer]", `PublicKey = ${hubKey}`, `Endpoint = ${endpoint}`, "AllowedIPs = 10.44.0.0/24", "PersistentKeepalive = 25"],
            );
            assert.strictEqual(writtenFile(cloudConfig, "/etc/wireguard/privatekey"), `${spokeKey(i)}\n`);
        }
    });

    it("NATS user-data: nats-server wants and starts after wg-quick@wg0, which runcmd brings up first (after the metadata guard)", () => {
        for (const i of NODES) {
            const cloudConfig = userData(cloud.byName(`nats-${i}-instance`));
            const unit = writtenFile(cloudConfig, "/etc/systemd/system/nats-server.service");
            assert.match(unit, /^Wants=.*\bwg-quick@wg0\.service\b/m);
            assert.match(unit, /^After=.*\bwg-quick@wg0\.service\b/m);
            assert.deepStrictEqual(YAML.parse(cloudConfig).runcmd[2], ["systemctl", "enable", "--now", "wg-quick@wg0.service"]);
        }
    });

    it("NATS nodes are created after the hub's key is known (their user-data carries it)", () => {
        for (const i of NODES) {
            const deps = cloud.byName(`nats-${i}-bootstrap-object`).dependencies;
            assert.ok(deps.has("wg-cache-pubkey"), `nats-${i}'s user-data does not depend on the hub's key: ${[...deps].join(", ")}`);
        }
    });

    it("hub and NATS user-data pass cloud-init schema and shellcheck", async () => {
        for (const name of ["wg-cache-node-instance", ...NODES.map((i) => `nats-${i}-instance`)]) {
            await assertValidCloudConfig(userData(cloud.byName(name)), dir);
        }
    });

    it("no spoke private key appears outside a secret: user-data secret, every other input and the stack outputs clear of it", () => {
        for (const name of ["wg-cache-node-instance", ...NODES.map((i) => `nats-${i}-instance`)]) {
            assert.ok(isRpcSecret(cloud.byName(name).inputs.metadatas), `${name}: user-data is not secret`);
        }
        const visible = JSON.stringify([cloud.resources.map((r) => redactInputs(r.inputs)), redactInputs(outputs)]);
        for (const i of NODES) assert.ok(!visible.includes(spokeKey(i)), `nats-${i}'s private key is visible`);
    });

    it("the hub's boot nonce follows its spoke list, so a changed list also gets a fresh key path", () => {
        const keepers = unwrapSecrets(cloud.byName("wg-cache-boot").inputs).keepers;
        assert.match(keepers.cloudConfigTemplate, /^[0-9a-f]{64}$/);
        assert.ok(cloud.byName("wg-cache-boot").dependencies.has("nats-wg-meshstack-dev-0"));
    });
});

describe("WgSpokeKeys (mock cloud)", () => {
    let keys: WgSpokeKeys;
    before(async () => {
        const cloud = await startMockCloud({ project: "meshstack", stack: "test" });
        await cloud.runProgram(() => {
            keys = new WgSpokeKeys("spokes", { spokes: [{ name: "a-0", address: "10.44.0.10" }, { name: "a-1", address: "10.44.0.11" }] });
            return {};
        });
    });

    it("keeps private keys secret and public keys (and the peers list) readable", async () => {
        for (const key of keys.keys) {
            assert.ok(await isSecret(key.privateKey));
            assert.ok(!(await isSecret(key.publicKey)));
        }
        assert.ok(!(await isSecret(keys.peers)));
    });

    it("shapes peers for WgCache: name, public key of the matching private key, address", async () => {
        const peers = await resolve(keys.peers);
        const privateKeys = await Promise.all(keys.keys.map((k) => resolve(k.privateKey)));
        assert.deepStrictEqual(peers, [
            { name: "a-0", publicKey: wgPubkey(privateKeys[0]), address: "10.44.0.10" },
            { name: "a-1", publicKey: wgPubkey(privateKeys[1]), address: "10.44.0.11" },
        ]);
    });

    it("refuses two spokes with one name or one address", async () => {
        const cloud = await startMockCloud({ project: "meshstack", stack: "test" });
        await assert.rejects(
            cloud.runProgram(() => new WgSpokeKeys("dup", { spokes: [{ name: "a", address: "10.44.0.10" }, { name: "b", address: "10.44.0.10" }] })),
            /spoke address 10\.44\.0\.10 appears twice/,
        );
    });
});
