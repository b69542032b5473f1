import * as assert from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { ObjectStore } from "../../components/objectStore";
import { WgCache, WgCacheArgs } from "../../components/wgCache";
import { NODE_BOOTSTRAP_LOG_PATH } from "../../cloudinit/nodeBootstrap";
import { FakedAnswer, isRpcSecret, MockCloud, Registration, ResourceAnswer, startMockCloud } from "../../tooling/mockCloud";
import { firewallLabelProblem, instanceLabelProblem } from "../../lib/naming";
import { FIREWALL_RULE_LABEL } from "../../lib/linodeLimits";
import { isWgPublicKey } from "../../lib/wgKey";
import { DEFAULT_POLL_POLICY } from "../../providers/wgPubkeyPoll";
import { unwrapSecrets } from "../../tooling/mockCloud";
import { publishedMaterialKey } from "../../lib/runtimeChannel";
import { assertValidCloudConfig } from "../support/cloudInit";

const naming = { project: "meshstack", stack: "dev" };
const FIREWALL = "linode:index/firewall:Firewall";
const INSTANCE = "linode:index/instance:Instance";

const POLL = "pulumi-nodejs:dynamic/meshstack:WgPubkeyPoll";
type AnswerHook = (registration: Registration, faked: FakedAnswer) => ResourceAnswer;

/** A fresh X25519 public key, base64 as `wg pubkey` prints it. */
function wgPublicKey(): string {
    const { publicKey } = crypto.generateKeyPairSync("x25519");
    return publicKey.export({ format: "der", type: "spki" }).subarray(-32).toString("base64");
}

const resolved = <T>(output: pulumi.Output<T>) => new Promise<T>((resolve) => output.apply(resolve));

describe("WgCache component (mock cloud)", function () {
    this.timeout(30_000);
    let dir: string;
    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-wgcache-"));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    const baseArgs = (objectStore: ObjectStore): WgCacheArgs => ({
        naming, region: "us-east", instanceType: "g6-nanode-1", image: "linode/debian12", listenPort: 51820, address: "10.44.0.1/24", subnet: "10.44.0.0/24",
        authorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOPeratorKeyForTestsOnly0000000000000000 ops@example"],
        breakGlassSshCidrs: ["203.0.113.7/32", "2001:db8::/48"], pubkeyPollTimeoutSeconds: 480,
        objectStore, bootstrap: { metadataLimitBytes: 16384, gzipUserDataImages: [], urlExpirySeconds: 3600 },
    });

    /** Runs a program holding one cache (and its bucket) as `pulumi up` would; returns what it recorded and warned. */
    async function build(name: string, overrides: Partial<WgCacheArgs> = {}, answer?: AnswerHook): Promise<{ cloud: MockCloud; cache: WgCache; warned: string[] }> {
        const cloud = await startMockCloud({ project: naming.project, stack: naming.stack, answer });
        const warned: string[] = [];
        const consoleWarn = console.warn;
        // Under mocks pulumi.log.warn goes to console.warn.
        console.warn = (...args: unknown[]) => void warned.push(args.join(" "));
        let cache: WgCache | undefined;
        try {
            await cloud.runProgram(() => {
                const store = new ObjectStore(`${name}-store`, { naming, kind: "linode", region: "us-east", bootstrapPrefix: "bootstrap/", bootstrapObjectExpiryDays: 1 });
                cache = new WgCache(name, { ...baseArgs(store), ...overrides });
                return {};
            });
        } finally {
            console.warn = consoleWarn;
        }
        return { cloud, cache: cache!, warned };
    }

    it("firewall: inbound DROP, UDP on the WireGuard port, tcp/22 only from the break-glass CIDRs, outbound ACCEPT", async () => {
        const { cloud } = await build("cache-a");
        const fw = unwrapSecrets(cloud.byName("cache-a-firewall").inputs);
        assert.strictEqual(fw.inboundPolicy, "DROP");
        assert.strictEqual(fw.outboundPolicy, "ACCEPT");
        assert.deepStrictEqual(fw.inbounds, [
            { label: "wireguard", action: "ACCEPT", protocol: "UDP", ports: "51820", ipv4s: ["0.0.0.0/0"], ipv6s: ["::/0"] },
            { label: "break-glass-ssh", action: "ACCEPT", protocol: "TCP", ports: "22", ipv4s: ["203.0.113.7/32"], ipv6s: ["2001:db8::/48"] },
        ]);
    });

    it("firewall: no tcp/22 rule at all when no break-glass CIDRs are configured", async () => {
        const { cloud, warned } = await build("cache-b", { breakGlassSshCidrs: [], listenPort: 40000 });
        const fw = unwrapSecrets(cloud.byName("cache-b-firewall").inputs);
        assert.deepStrictEqual(fw.inbounds.map((r: { protocol: string; ports: string }) => `${r.protocol}/${r.ports}`), ["UDP/40000"]);
        assert.deepStrictEqual(warned, []);
    });

    it("warns when tcp/22 is open to the world", async () => {
        const { warned } = await build("cache-c", { breakGlassSshCidrs: ["0.0.0.0/0", "::/0"] });
        assert.strictEqual(warned.length, 1);
        assert.match(warned[0], /meshstack:breakGlassSshCidrs contains 0\.0\.0\.0\/0, ::\/0: tcp\/22 .* open to the whole internet/);
    });

    it("attaches the firewall to the instance at creation", async () => {
        const { cloud, cache } = await build("cache-d");
        const instance = cloud.byName("cache-d-node-instance");
        assert.strictEqual(unwrapSecrets(instance.inputs).firewallId, Number(await resolved(cache.firewall.id)));
        assert.ok(instance.dependencies.has("cache-d-firewall"));
    });

    it("keeps the user-data and the presigned URL secret, and signs the poll with the bucket key as secret inputs", async () => {
        const { cloud, cache } = await build("cache-e");
        const instance = cloud.byName("cache-e-node-instance");
        assert.ok(isRpcSecret(instance.inputs.metadatas), "user-data is not secret");
        const poll = cloud.byName("cache-e-node-published");
        assert.ok(isRpcSecret(poll.inputs.accessKeyId) && isRpcSecret(poll.inputs.secretAccessKey));
        const put = cloud.byName("cache-e-node-publish-url");
        assert.ok(isRpcSecret(put.inputs.secretAccessKey));
        // Nothing the component exports carries the URL.
        const url = String(unwrapSecrets(put.outputs).url);
        const exported = await resolved(pulumi.all([cache.peerSection, cache.endpoint, cache.publicKey, cache.member]));
        assert.ok(!JSON.stringify(exported).includes("X-Amz-Signature"));
        assert.ok(url.includes("X-Amz-Signature"));
    });

    it("renders a cloud-config that passes cloud-init's schema and shellcheck and carries the PUT URL for this generation's document in the runtime bucket", async () => {
        const { cloud } = await build("cache-f");
        // The cloud-config as delivered, inline or behind the #include pointer.
        const cloudConfig = String(unwrapSecrets(cloud.byName("cache-f-node-bootstrap-object").inputs.content));
        await assertValidCloudConfig(cloudConfig, dir);
        const put = unwrapSecrets(cloud.byName("cache-f-node-publish-url").inputs);
        const generation = String(unwrapSecrets(cloud.byName("cache-f-node-label").outputs).result);
        assert.strictEqual(put.key, publishedMaterialKey("dev", "cache-f", generation));
        assert.strictEqual(put.bucket, unwrapSecrets(cloud.byName("cache-f-store-runtime-bucket").outputs).label);
        assert.strictEqual(put.method, "PUT");
        assert.strictEqual(put.expiresInSeconds, 3600);
        assert.ok(cloudConfig.includes(unwrapSecrets(cloud.byName("cache-f-node-publish-url").outputs).url));
    });

    it("renews the generation, and with it the PUT URL, with every input that replaces the instance", async () => {
        const { cloud } = await build("cache-g");
        const label = unwrapSecrets(cloud.byName("cache-g-node-label").inputs);
        assert.deepStrictEqual(Object.keys(label.keepers).sort(), ["image", "region", "userData"]);
        const put = unwrapSecrets(cloud.byName("cache-g-node-publish-url").inputs);
        assert.deepStrictEqual(put.keepers, { generation: unwrapSecrets(cloud.byName("cache-g-node-label").outputs).result });
        const other = unwrapSecrets((await build("cache-g2", { listenPort: 51821 })).cloud.byName("cache-g2-node-label").inputs);
        assert.notStrictEqual(other.keepers.userData, label.keepers.userData);
    });

    it("polls after the node exists, for this instance's document with no certificate requests, with the configured timeout", async () => {
        const { cloud, cache } = await build("cache-h", { pubkeyPollTimeoutSeconds: 120, pollPolicy: { authGraceMs: 30_000 } });
        const poll = cloud.byName("cache-h-node-published");
        assert.ok(poll.dependencies.has("cache-h-node-instance"), `poll dependencies: ${[...poll.dependencies].join(", ")}`);
        const inputs = unwrapSecrets(poll.inputs);
        assert.strictEqual(inputs.instanceId, String(await resolved(cache.instanceId)));
        assert.strictEqual(inputs.key, publishedMaterialKey("dev", "cache-h", String(unwrapSecrets(cloud.byName("cache-h-node-label").outputs).result)));
        assert.deepStrictEqual([inputs.node, inputs.expectedRequests], ["cache-h", {}]);
        assert.strictEqual(inputs.nodeAddress, await resolved(cache.publicIpv4));
        assert.strictEqual(inputs.bootstrapLogPath, NODE_BOOTSTRAP_LOG_PATH);
        assert.deepStrictEqual(inputs.policy, { ...DEFAULT_POLL_POLICY, authGraceMs: 30_000, timeoutMs: 120_000 });
    });

    it("outputs the public key its poll read from the bucket, the one the node published, and puts it in the [Peer] section", async () => {
        // A key of the test's own making, not the mock cloud's: the output must be the poll's result.
        const published = wgPublicKey();
        const { cache } = await build("cache-i", {}, (registration, faked) =>
            registration.type === POLL ? { id: faked.id, state: { ...faked.state, publicKey: published } } : faked);
        assert.strictEqual(await resolved(cache.publicKey), published);
        assert.ok((await resolved(cache.peerSection)).split("\n").includes(`PublicKey = ${published}`));
        assert.strictEqual((await resolved(cache.member)).publicKey, published);
    });

    it("outputs the public endpoint, the WG address and a paste-ready [Peer] section", async () => {
        const { cache } = await build("cache-i2");
        const [publicKey, endpoint, peerSection, label] = await resolved(pulumi.all([cache.publicKey, cache.endpoint, cache.peerSection, cache.label]));
        assert.ok(isWgPublicKey(publicKey));
        // The mock instance lists its private 192.168.139.x address first.
        assert.match(endpoint, /^203\.0\.113\.\d+:51820$/);
        assert.strictEqual(cache.wgAddress, "10.44.0.1/24");
        assert.strictEqual(
            peerSection,
            `[Peer]\n# meshstack WireGuard cache ${label}\nPublicKey = ${publicKey}\nEndpoint = ${endpoint}\nAllowedIPs = 10.44.0.0/24\nPersistentKeepalive = 25\n`,
        );
    });

    it("gives every Linode resource a valid label for its type, and firewall rules valid labels", async () => {
        const { cloud } = await build("wg-cache");
        const problemOf: Record<string, (label: string) => string | undefined> = { [FIREWALL]: firewallLabelProblem, [INSTANCE]: instanceLabelProblem };
        for (const r of cloud.resources.filter((x) => x.type === FIREWALL || x.type === INSTANCE)) {
            const label = String(unwrapSecrets(r.inputs).label);
            assert.strictEqual(problemOf[r.type](label), undefined, `${r.name}: ${label}`);
        }
        for (const fw of cloud.ofType(FIREWALL)) {
            for (const rule of unwrapSecrets(fw.inputs).inbounds as { label: string }[]) {
                assert.ok(rule.label.length >= FIREWALL_RULE_LABEL.min && rule.label.length <= FIREWALL_RULE_LABEL.max, rule.label);
                assert.ok(/^[A-Za-z0-9][A-Za-z0-9_.-]*[A-Za-z0-9]$/.test(rule.label), rule.label);
            }
        }
    });

    it("refuses a component name that leaves a firewall label no room, naming it", async () => {
        await assert.rejects(build("a-rather-long-wireguard-cache-component-name"), /role "a-rather-long-wireguard-cache-component-name-[a-z-]+" does not fit a name of at most \d+ characters; allowed: /);
    });
});
