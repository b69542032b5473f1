import * as assert from "assert";
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import * as YAML from "yaml";
import { NatsCluster, NatsClusterArgs } from "../components/natsCluster";
import { ObjectStore } from "../components/objectStore";
import { pemBlock } from "../lib/config";
import { LINODE_METADATA_SAFE_LIMIT_BYTES } from "../lib/limits";
import { isRpcSecret, MockCloud, RecordedResource, startMockCloud, unwrapSecrets } from "../tooling/mockCloud";
import { instanceUserData } from "../tooling/plan";
import { meshTopology } from "../lib/topology";
import { isSecret, resolve } from "./support/outputs";
import { leakedSecrets, pemLines, SecretValue } from "./support/secrets";

const naming = { project: "meshstack", stack: "test" };
const topology = meshTopology({ hubInterfaceAddress: "10.44.0.1/24", natsNodeCount: 3, clusterName: "meshstack-test" });
const members = (count: number, of = topology) => of.nats.slice(0, count).map((node) => ({ node, wgPrivateKey: crypto.randomBytes(32).toString("base64") }));
const dnsTopology = meshTopology({ hubInterfaceAddress: "10.44.0.1/24", natsNodeCount: 3, clusterName: "meshstack-test", dnsDomain: "example.net" });
const wgHub = { publicKey: crypto.randomBytes(32).toString("base64"), endpoint: "203.0.113.12:51820" };

async function build(overrides: Partial<NatsClusterArgs> = {}): Promise<{ cloud: MockCloud; cluster: NatsCluster }> {
    const cloud = await startMockCloud({ project: "meshstack", stack: "test" });
    let cluster: NatsCluster | undefined;
    await cloud.runProgram(() => {
        const objectStore = new ObjectStore("store", { naming, kind: "linode", region: "us-east", bootstrapPrefix: "bootstrap/", bootstrapObjectExpiryDays: 1 });
        cluster = new NatsCluster("nats", {
            naming, region: "us-east", instanceType: "g6-standard-1", image: "linode/debian12", topology, members: members(3),
            clientCidrs: ["198.51.100.0/24", "2001:db8::/32"], wgHub, authorizedKeys: [],
            objectStore, bootstrap: { metadataLimitBytes: LINODE_METADATA_SAFE_LIMIT_BYTES, gzipUserDataImages: [], urlExpirySeconds: 900 },
            ...overrides,
        });
        return {};
    });
    return { cloud, cluster: cluster! };
}

/** The files the node's cloud-config writes, by path (user-data as the instance receives it, inline). */
function writtenFiles(instance: RecordedResource): Record<string, { content: string; permissions: string; owner: string }> {
    const text = instanceUserData(instance)!.toString("utf8");
    assert.match(text, /^#cloud-config\n/, "expected the cloud-config inline");
    const doc = YAML.parse(text) as { write_files: { path: string; content: string; permissions: string; owner: string }[] };
    return Object.fromEntries(doc.write_files.map((f) => [f.path, f]));
}

describe("NatsCluster (mocks)", () => {
    let cloud: MockCloud;
    let cluster: NatsCluster;
    before(async () => ({ cloud, cluster } = await build()));

    it("creates one instance, one route certificate and one data-plane certificate per node", () => {
        for (const kind of ["instance", "route", "server"]) {
            const names = cloud.resources.map((r) => r.name).filter((n) => new RegExp(`^nats-[0-9]+-${kind}$`).test(n)).sort();
            assert.deepStrictEqual(names, ["nats-0", "nats-1", "nats-2"].map((n) => `${n}-${kind}`), kind);
        }
        assert.strictEqual(cloud.ofType("linode:index/instance:Instance").filter((r) => r.name.startsWith("nats-")).length, 3);
    });

    it("signs route certificates with the route CA and data-plane certificates with the client CA", () => {
        const caOf = (name: string) => cloud.byName(name).dependencies;
        assert.ok(caOf("nats-0-route").has("nats-route-ca") && !caOf("nats-0-route").has("nats-client-ca"));
        assert.ok(caOf("nats-0-server").has("nats-client-ca") && !caOf("nats-0-server").has("nats-route-ca"));
    });

    it("names hostname, DNS-free service name and WireGuard address in the certificate requests, never a public IP", () => {
        const route = unwrapSecrets(cloud.byName("nats-1-route-csr").inputs);
        assert.deepStrictEqual([route.dnsNames, route.ipAddresses], [["meshstack-test-1"], ["10.44.0.11"]]);
        const server = unwrapSecrets(cloud.byName("nats-1-server-csr").inputs);
        assert.deepStrictEqual(server.dnsNames, ["meshstack-test-1", "meshstack-test.nats.internal"]);
        assert.deepStrictEqual(unwrapSecrets(cloud.byName("nats-1-route").inputs).allowedUses, ["digital_signature", "server_auth", "client_auth"]);
    });

    /** The cluster's secret values as the providers made them: every private key and the route password. */
    function clusterSecrets(): SecretValue[] {
        const keys = cloud.ofType("tls:index/privateKey:PrivateKey").flatMap((k) => pemLines(`the private key of ${k.name}`, String(unwrapSecrets(k.outputs).privateKeyPem)));
        return [...keys, { what: "the cluster password", value: String(unwrapSecrets(cloud.byName("nats-cluster-password").outputs).result) }];
    }

    it("makes one private key per CA and per node certificate", () => {
        const keys = cloud.ofType("tls:index/privateKey:PrivateKey").map((k) => k.name).sort();
        assert.deepStrictEqual(keys, ["nats-0-route-key", "nats-0-server-key", "nats-1-route-key", "nats-1-server-key", "nats-2-route-key", "nats-2-server-key", "nats-client-ca-key", "nats-route-ca-key"]);
    });

    it("hands every private key and the password to other resources only as secrets", () => {
        const consumers = cloud.resources.filter((r) => r.type !== "tls:index/privateKey:PrivateKey" && r.type !== "random:index/randomPassword:RandomPassword");
        const used = new Set(consumers.flatMap((r) => leakedSecrets(unwrapSecrets(r.inputs), clusterSecrets())));
        assert.deepStrictEqual(clusterSecrets().filter((s) => !used.has(s.what)), [], "a secret no resource uses cannot show that it is kept secret");
        const leaks = consumers.flatMap((r) => leakedSecrets(r.inputs, clusterSecrets()).map((what) => `${what} in the inputs of ${r.name}`));
        assert.deepStrictEqual(leaks, []);
    });

    it("ships each node's keys and the password in its user-data, which is secret", () => {
        for (const i of [0, 1, 2]) {
            const instance = cloud.byName(`nats-${i}-instance`);
            assert.ok(isRpcSecret(instance.inputs.metadatas), `nats-${i}'s user-data is not secret`);
            const delivered = leakedSecrets(unwrapSecrets(instance.inputs.metadatas), clusterSecrets());
            for (const what of [`the private key of nats-${i}-route-key`, `the private key of nats-${i}-server-key`, "the cluster password"]) {
                assert.ok(delivered.includes(what), `nats-${i}'s user-data lacks ${what}`);
            }
        }
    });

    it("exports the client CA key as a secret, and no other output of the cluster or its nodes carries a secret value", async () => {
        const outputsOf = (owner: object) => Object.entries(owner).filter(([, v]) => pulumi.Output.isInstance(v)) as [string, pulumi.Output<unknown>][];
        const exported = [...outputsOf(cluster), ...cluster.nodes.flatMap((node, i) => outputsOf(node).map(([k, v]) => [`nodes[${i}].${k}`, v] as [string, pulumi.Output<unknown>]))];
        const carrying: string[] = [];
        for (const [name, output] of exported) {
            if (leakedSecrets(await resolve(output), clusterSecrets()).length > 0) {
                carrying.push(name);
                assert.ok(await isSecret(output), `${name} carries a secret value but is not secret`);
            }
        }
        assert.deepStrictEqual(carrying, ["clientCaKeyPem"]);
    });

    it("generates a letters-and-digits cluster password (it goes into route URLs unescaped)", () => {
        assert.deepStrictEqual(unwrapSecrets(cloud.byName("nats-cluster-password").inputs).special, false);
    });

    it("firewall: client port from the configured CIDRs, route port from the WireGuard subnet only, monitoring closed", () => {
        const firewall = unwrapSecrets(cloud.byName("nats-firewall").inputs);
        assert.strictEqual(firewall.inboundPolicy, "DROP");
        assert.deepStrictEqual(firewall.inbounds, [
            { label: "nats-client", action: "ACCEPT", protocol: "TCP", ports: "4222", ipv4s: ["198.51.100.0/24"], ipv6s: ["2001:db8::/32"] },
            { label: "nats-route-wg", action: "ACCEPT", protocol: "TCP", ports: "6222", ipv4s: ["10.44.0.0/24"] },
        ]);
        for (const i of [0, 1, 2]) {
            const instance = cloud.byName(`nats-${i}-instance`);
            assert.ok(instance.dependencies.has("nats-firewall") && Number.isInteger(instance.inputs.firewallId), `nats-${i} is created behind the firewall`);
        }
    });

    it("ships the hardened unit, the 0600 secrets include and the password nowhere else", () => {
        const files = writtenFiles(cloud.byName("nats-0-instance"));
        const unit = files["/etc/systemd/system/nats-server.service"].content;
        assert.match(unit, /^Restart=always$/m);
        assert.match(unit, /^User=nats$/m);
        assert.match(unit, /^Wants=network-online\.target wg-quick@wg0\.service$/m);
        assert.match(unit, /^After=network-online\.target wg-quick@wg0\.service$/m);
        const secrets = files["/etc/nats/cluster-secrets.conf"];
        assert.deepStrictEqual([secrets.permissions, secrets.owner], ["0600", "nats:nats"]);
        const password = /password: "([A-Za-z0-9]+)"/.exec(secrets.content)![1];
        assert.match(secrets.content, new RegExp(`nats-route://route:${password}@10\\.44\\.0\\.11:6222`));
        for (const [path, file] of Object.entries(files)) {
            if (path !== "/etc/nats/cluster-secrets.conf") assert.ok(!file.content.includes(password), `${path} holds the password`);
        }
    });

    it("exposes client URLs on the nodes' public IPs", async () => {
        const urls = await resolve(cluster.clientUrls);
        assert.strictEqual(urls.length, 3);
        urls.forEach((url) => assert.match(url, /^tls:\/\/203\.0\.113\.[0-9]+:4222$/));
    });

    it("creates no KV bucket and no DNS records unless asked", () => {
        assert.strictEqual(cloud.ofType("pulumi-nodejs:dynamic/meshstack:JetStreamKv").length, 0);
        assert.strictEqual(cloud.ofType("linode:index/domainRecord:DomainRecord").length, 0);
    });
});

describe("NatsCluster with a DNS domain, an existing client CA and the control-plane KV (mocks)", () => {
    let cloud: MockCloud;
    const caCert = "-----BEGIN CERTIFICATE-----\nEXISTINGCA\n-----END CERTIFICATE-----\n";
    before(async () => ({ cloud } = await build({
        topology: dnsTopology,
        members: members(3, dnsTopology),
        dnsDomain: "example.net",
        clientCa: { certPem: caCert, keyPem: pemBlock("PRIVATE KEY", "EXISTINGKEY") },
        controlPlaneKv: { bucket: "control", replicas: 1 },
    })));

    it("signs data-plane certificates with the supplied CA instead of generating one", () => {
        assert.throws(() => cloud.byName("nats-client-ca"));
        assert.strictEqual(unwrapSecrets(cloud.byName("nats-0-server").inputs).caCertPem, caCert);
    });

    it("adds the DNS names to the certificates and publishes A records once the IPs exist", () => {
        assert.deepStrictEqual(unwrapSecrets(cloud.byName("nats-2-server-csr").inputs).dnsNames, ["meshstack-test-2", "meshstack-test-2.example.net", "meshstack-test.example.net"]);
        const records = cloud.ofType("linode:index/domainRecord:DomainRecord").map((r) => unwrapSecrets(r.inputs));
        assert.strictEqual(records.length, 6);
        assert.ok(records.every((r) => r.recordType === "A" && /^203\.0\.113\./.test(r.target) && Number.isInteger(r.domainId)));
    });

    it("creates the KV bucket at the configured replicas over the public client URLs, with a secret deployer key", () => {
        const [kv] = cloud.ofType("pulumi-nodejs:dynamic/meshstack:JetStreamKv");
        const inputs = unwrapSecrets(kv.inputs);
        assert.deepStrictEqual([inputs.bucket, inputs.replicas, inputs.tlsServerName], ["control", 1, "meshstack-test.example.net"]);
        assert.ok(inputs.servers.every((s: string) => /^tls:\/\/203\.0\.113\.[0-9]+:4222$/.test(s)));
        assert.ok(isRpcSecret(kv.inputs.keyPem));
    });

    it("refuses an even number of members (RAFT needs a majority)", async () => {
        await assert.rejects(build({ members: members(2) }), /meshstack:natsNodeCount 2 is not allowed; allowed: an odd integer/);
    });

    it("refuses more KV replicas than nodes, naming the config keys", async () => {
        await assert.rejects(build({ controlPlaneKv: { bucket: "control", replicas: 5 } }), /meshstack:natsKvReplicas 5 exceeds meshstack:natsNodeCount 3/);
    });
});
