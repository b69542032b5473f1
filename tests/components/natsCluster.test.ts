import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import * as YAML from "yaml";
import { NatsCluster, NatsClusterArgs } from "../../components/natsCluster";
import { ObjectStore } from "../../components/objectStore";
import { opensslRequestConfig } from "../../cloudinit/natsCerts";
import { NODE_BOOTSTRAP_SCRIPT_PATH } from "../../cloudinit/nodeBootstrap";
import { RequestedIdentity } from "../../lib/certRequest";
import { pemBlock } from "../../lib/config";
import { LINODE_METADATA_SAFE_LIMIT_BYTES, MAX_NATS_NODES } from "../../lib/limits";
import { isRpcSecret, MockCloud, startMockCloud, unwrapSecrets } from "../../tooling/mockCloud";
import { rejoinPendingKey } from "../../lib/runtimeChannel";
import { meshTopology } from "../../lib/topology";
import { isSecret, resolve } from "../support/outputs";
import { leakedSecrets, pemLines, SecretValue } from "../support/secrets";

const naming = { project: "meshstack", stack: "test" };
const topology = meshTopology({ hubInterfaceAddress: "10.44.0.1/24", natsNodeCount: 3, clusterName: "meshstack-test" });
const dnsTopology = meshTopology({ hubInterfaceAddress: "10.44.0.1/24", natsNodeCount: 3, clusterName: "meshstack-test", dnsDomain: "example.net" });
const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

/** `settleMetaGroup` adds the meta group's settling after the object store, as index.ts adds it after the mesh's desired states. */
async function build(overrides: Partial<NatsClusterArgs> = {}, settleMetaGroup = false): Promise<{ cloud: MockCloud; cluster: NatsCluster; metaGroup?: unknown }> {
    const cloud = await startMockCloud({ project: "meshstack", stack: "test" });
    let cluster: NatsCluster | undefined;
    let metaGroup: unknown;
    await cloud.runProgram(() => {
        const objectStore = new ObjectStore("store", { naming, kind: "linode", region: "us-east", bootstrapPrefix: "bootstrap/", bootstrapObjectExpiryDays: 1 });
        cluster = new NatsCluster("nats", {
            naming, region: "us-east", instanceType: "g6-standard-1", image: "linode/debian12", topology, nodes: topology.nats, publishTimeoutSeconds: 300,
            clientCidrs: ["198.51.100.0/24", "2001:db8::/32"], authorizedKeys: [],
            objectStore, bootstrap: { metadataLimitBytes: LINODE_METADATA_SAFE_LIMIT_BYTES, gzipUserDataImages: [], urlExpirySeconds: 900 },
            ...overrides,
        });
        if (settleMetaGroup) metaGroup = cluster.settleMetaGroup([objectStore]);
        return {};
    });
    return { cloud, cluster: cluster!, metaGroup };
}

/** The node's cloud-config as its user-data delivers it (inline or behind the pointer), as text. */
function cloudConfigOf(cloud: MockCloud, node: string): string {
    return String(unwrapSecrets(cloud.byName(`${node}-bootstrap-object`).inputs.content));
}

/** The files the node's cloud-config writes, by path. */
function writtenFiles(cloud: MockCloud, node: string): Record<string, { content: string; permissions: string; owner: string }> {
    const text = cloudConfigOf(cloud, node);
    assert.match(text, /^#cloud-config\n/);
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

    it("signs exactly the certificate requests the node published, each with its own profile", () => {
        const published = unwrapSecrets(cloud.byName("nats-1-published").outputs).requests as Record<string, string>;
        assert.deepStrictEqual(Object.keys(published).sort(), ["route", "server"]);
        assert.deepStrictEqual(Object.keys(unwrapSecrets(cloud.byName("nats-1-published").inputs).expectedRequests), ["route", "server"]);
        for (const kind of ["route", "server"]) {
            const cert = cloud.byName(`nats-1-${kind}`);
            assert.strictEqual(unwrapSecrets(cert.inputs).certRequestPem, published[kind], `nats-1-${kind} signs the published ${kind} request`);
            assert.ok(cert.dependencies.has("nats-1-published"));
        }
        assert.deepStrictEqual(unwrapSecrets(cloud.byName("nats-1-route").inputs).allowedUses, ["digital_signature", "server_auth", "client_auth"]);
    });

    it("accepts from each node only requests for the names its own user-data asks for", () => {
        for (const node of ["nats-0", "nats-1", "nats-2"]) {
            const expected = unwrapSecrets(cloud.byName(`${node}-published`).inputs).expectedRequests as Record<string, RequestedIdentity>;
            const script = writtenFiles(cloud, node)[NODE_BOOTSTRAP_SCRIPT_PATH].content;
            assert.deepStrictEqual(Object.keys(expected), ["route", "server"]);
            for (const [name, identity] of Object.entries(expected)) {
                assert.ok(script.includes(`make_request ${name} `) && script.includes(opensslRequestConfig(identity)), `${node} asks for its ${name} profile's names`);
            }
            assert.ok(expected.server.dnsNames.includes(cluster.serviceName) && !expected.route.dnsNames.includes(cluster.serviceName));
        }
    });

    it("has each node make its TLS requests for its hostname, service name and WireGuard address, never a public IP", () => {
        const script = writtenFiles(cloud, "nats-1")["/usr/local/sbin/meshstack-node-bootstrap"].content;
        assert.match(script, /meshstack-test-1/);
        assert.match(script, /meshstack-test\.nats\.internal/);
        assert.match(script, /10\.44\.0\.11/);
        assert.doesNotMatch(script, /203\.0\.113\./);
    });

    it("waits for each node's own instance and deletes a node before its replacement", () => {
        for (const i of [0, 1, 2]) {
            const poll = cloud.byName(`nats-${i}-published`);
            assert.ok(poll.dependencies.has(`nats-${i}-instance`));
            assert.strictEqual(unwrapSecrets(poll.inputs).node, `meshstack-test-${i}`);
            assert.strictEqual(cloud.byName(`nats-${i}-instance`).options?.deleteBeforeReplace, true);
        }
    });

    /** The cluster's secret values as the providers made them: every private key, the route password and the system account's. */
    function clusterSecrets(): SecretValue[] {
        const keys = cloud.ofType("tls:index/privateKey:PrivateKey").flatMap((k) => pemLines(`the private key of ${k.name}`, String(unwrapSecrets(k.outputs).privateKeyPem)));
        return [
            ...keys,
            { what: "the cluster password", value: String(unwrapSecrets(cloud.byName("nats-cluster-password").outputs).result) },
            { what: "the system account password", value: String(unwrapSecrets(cloud.byName("nats-system-password").outputs).result) },
        ];
    }

    it("holds the CAs' private keys only: every node key is born on its node", () => {
        const keys = cloud.ofType("tls:index/privateKey:PrivateKey").map((k) => k.name).sort();
        assert.deepStrictEqual(keys, ["nats-client-ca-key", "nats-route-ca-key"]);
        assert.deepStrictEqual(cloud.ofType("tls:index/certRequest:CertRequest").map((r) => r.name), []);
    });

    it("hands every private key and the password to other resources only as secrets", () => {
        const consumers = cloud.resources.filter((r) => r.type !== "tls:index/privateKey:PrivateKey" && r.type !== "random:index/randomPassword:RandomPassword");
        const used = new Set(consumers.flatMap((r) => leakedSecrets(unwrapSecrets(r.inputs), clusterSecrets())));
        assert.deepStrictEqual(clusterSecrets().filter((s) => !used.has(s.what)), [], "a secret no resource uses cannot show that it is kept secret");
        const leaks = consumers.flatMap((r) => leakedSecrets(r.inputs, clusterSecrets()).map((what) => `${what} in the inputs of ${r.name}`));
        assert.deepStrictEqual(leaks, []);
    });

    it("ships the passwords in each node's user-data, which is secret, and no private key at all", () => {
        for (const i of [0, 1, 2]) {
            const instance = cloud.byName(`nats-${i}-instance`);
            assert.ok(isRpcSecret(instance.inputs.metadatas), `nats-${i}'s user-data is not secret`);
            const text = cloudConfigOf(cloud, `nats-${i}`);
            assert.deepStrictEqual(leakedSecrets(text, clusterSecrets()), ["the cluster password", "the system account password"]);
            assert.doesNotMatch(text, PRIVATE_KEY);
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

    it("firewall: WireGuard from anywhere (nodes dial each other), client port from the configured CIDRs, route port from the WireGuard subnet only, monitoring closed", () => {
        const firewall = unwrapSecrets(cloud.byName("nats-firewall").inputs);
        assert.strictEqual(firewall.inboundPolicy, "DROP");
        assert.deepStrictEqual(firewall.inbounds, [
            { label: "wireguard", action: "ACCEPT", protocol: "UDP", ports: "51820", ipv4s: ["0.0.0.0/0"], ipv6s: ["::/0"] },
            { label: "nats-client", action: "ACCEPT", protocol: "TCP", ports: "4222", ipv4s: ["198.51.100.0/24"], ipv6s: ["2001:db8::/32"] },
            { label: "nats-route-wg", action: "ACCEPT", protocol: "TCP", ports: "6222", ipv4s: ["10.44.0.0/24"] },
        ]);
        for (const i of [0, 1, 2]) {
            const instance = cloud.byName(`nats-${i}-instance`);
            assert.ok(instance.dependencies.has("nats-firewall") && Number.isInteger(instance.inputs.firewallId), `nats-${i} is created behind the firewall`);
        }
    });

    it("ships the hardened unit, the 0600 authorization include, and the password in root-only files alone", () => {
        const files = writtenFiles(cloud, "nats-0");
        const unit = files["/etc/systemd/system/nats-server.service"].content;
        assert.match(unit, /^Restart=always$/m);
        assert.match(unit, /^User=nats$/m);
        assert.match(unit, /^Wants=network-online\.target wg-quick@wg0\.service$/m);
        const secrets = files["/etc/nats/cluster-secrets.conf"];
        assert.deepStrictEqual([secrets.permissions, secrets.owner], ["0600", "nats:nats"]);
        const password = /password: "([A-Za-z0-9]+)"/.exec(secrets.content)![1];
        // Routes are the agent's (cluster-routes.conf): the user-data names no other server.
        assert.doesNotMatch(secrets.content, /nats-route:\/\//);
        const routePassword = files["/etc/meshstack/nats-route-password"];
        assert.deepStrictEqual([routePassword.permissions, routePassword.owner, routePassword.content.trim()], ["0600", "root:root", password]);
        for (const [path, file] of Object.entries(files)) {
            if (!["/etc/nats/cluster-secrets.conf", "/etc/meshstack/nats-route-password"].includes(path)) assert.ok(!file.content.includes(password), `${path} holds the password`);
        }
    });

    it("hands every node's runtime member its own name, address and certificates by file name", async () => {
        const member = await resolve(cluster.runtimeMembers[2].member);
        assert.deepStrictEqual([member.name, member.address], ["meshstack-test-2", "10.44.0.12"]);
        assert.match(member.endpoint, /^203\.0\.113\.[0-9]+:51820$/);
        const certificates = await resolve(cluster.runtimeMembers[2].certificates);
        assert.deepStrictEqual(Object.keys(certificates).sort(), ["client-ca.crt", "route-ca.crt", "route.crt", "server.crt"]);
        assert.deepStrictEqual(cluster.runtimeMembers[2].routes.length, 2);
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
        nodes: dnsTopology.nats,
        dnsDomain: "example.net",
        clientCa: { certPem: caCert, keyPem: pemBlock("PRIVATE KEY", "EXISTINGKEY") },
        controlPlaneKv: { bucket: "control", replicas: 1 },
    })));

    it("signs data-plane certificates with the supplied CA instead of generating one", () => {
        assert.throws(() => cloud.byName("nats-client-ca"));
        assert.strictEqual(unwrapSecrets(cloud.byName("nats-0-server").inputs).caCertPem, caCert);
    });

    it("has the nodes request their DNS names and publishes A records once the IPs exist", () => {
        const script = writtenFiles(cloud, "nats-2")["/usr/local/sbin/meshstack-node-bootstrap"].content;
        for (const name of ["meshstack-test-2.example.net", "meshstack-test.example.net"]) assert.ok(script.includes(name), `nats-2 requests ${name}`);
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
        await assert.rejects(build({ nodes: topology.nats.slice(0, 2) }), /meshstack:natsNodeCount 2 is not allowed; allowed: an odd integer/);
    });

    it("refuses more KV replicas than nodes, naming the config keys", async () => {
        await assert.rejects(build({ controlPlaneKv: { bucket: "control", replicas: 5 } }), /meshstack:natsKvReplicas 5 exceeds meshstack:natsNodeCount 3/);
    });
});

describe("NatsCluster with rejoin waits and the control-plane KV (mocks)", () => {
    let cloud: MockCloud;
    before(async () => ({ cloud } = await build({ rejoinTimeoutSeconds: 600, controlPlaneKv: { bucket: "control", replicas: 3 } })));

    it("waits for each node on its own client URL, under its own mark, with the deployer's secret key", () => {
        const rejoins = cloud.ofType("pulumi-nodejs:dynamic/meshstack:NatsRejoin");
        assert.deepStrictEqual(rejoins.map((r) => r.name).sort(), ["nats-0-rejoin", "nats-1-rejoin", "nats-2-rejoin"]);
        const servers = new Set<string>();
        for (const [i, node] of topology.nats.entries()) {
            const rejoin = cloud.byName(`nats-${i}-rejoin`);
            const inputs = unwrapSecrets(rejoin.inputs);
            assert.deepStrictEqual([inputs.node, inputs.key, inputs.timeoutSeconds, inputs.tlsServerName], [node.hostname, rejoinPendingKey("test", node.hostname), 600, topology.natsServiceName]);
            assert.match(inputs.server, /^tls:\/\/203\.0\.113\.[0-9]+:4222$/);
            servers.add(inputs.server);
            assert.ok(isRpcSecret(rejoin.inputs.keyPem));
            // Run again for a new instance, counted from its first boot: after its key poll, not its whole node.
            assert.ok(rejoin.dependencies.has(`nats-${i}-instance`) && rejoin.dependencies.has(`nats-${i}-published`));
            assert.ok(rejoin.dependencies.has("nats-client-ca") && rejoin.dependencies.has("nats-deployer"));
        }
        assert.strictEqual(servers.size, 3, "one client URL per node");
    });

    it("has the image guard read every node's rejoin mark, and the KV wait for every node and every rejoin", () => {
        const marks = unwrapSecrets(cloud.byName("nats-image-rollout").inputs).rejoinMarks;
        assert.deepStrictEqual(marks.keys, Object.fromEntries(topology.nats.map((n, i) => [`nats-${i}`, rejoinPendingKey("test", n.hostname)])));
        const kv = cloud.byName("nats-kv");
        for (const name of ["nats-0", "nats-1", "nats-2", "nats-0-rejoin", "nats-1-rejoin", "nats-2-rejoin"]) assert.ok(kv.dependencies.has(name), `nats-kv waits for ${name}`);
    });

    it("holds every member for the scale-down, with each node's client URL, the rejoin wait's deadline, and the deployer's key and the system password as secrets", () => {
        const scaleDown = cloud.byName("nats-scale-down");
        const inputs = unwrapSecrets(scaleDown.inputs);
        assert.deepStrictEqual(inputs.members, topology.nats.map((n, i) => ({ name: `nats-${i}`, node: n.hostname })));
        assert.deepStrictEqual(inputs.servers, topology.nats.map((_, i) => unwrapSecrets(cloud.byName(`nats-${i}-rejoin`).inputs).server));
        assert.deepStrictEqual([inputs.timeoutSeconds, inputs.systemPassword], [600, String(unwrapSecrets(cloud.byName("nats-system-password").outputs).result)]);
        assert.ok(isRpcSecret(scaleDown.inputs.keyPem) && isRpcSecret(scaleDown.inputs.systemPassword));
    });

    it("settles the meta group after what it is given, holding what the scale-down holds but the instance ids, its secrets secret", async () => {
        const { cloud: settled } = await build({ rejoinTimeoutSeconds: 600 }, true);
        const metaGroup = settled.byName("nats-meta-group");
        // Each its own provider (__provider, the serialized code).
        const { instanceIds, __provider: _scaleDownCode, ...scaleDownHolds } = unwrapSecrets(settled.byName("nats-scale-down").inputs);
        const { __provider: _metaGroupCode, ...metaGroupHolds } = unwrapSecrets(metaGroup.inputs);
        assert.strictEqual(instanceIds.length, 3);
        assert.deepStrictEqual(metaGroupHolds, scaleDownHolds);
        assert.ok(isRpcSecret(metaGroup.inputs.keyPem) && isRpcSecret(metaGroup.inputs.systemPassword));
        assert.ok(metaGroup.dependencies.has("store"), [...metaGroup.dependencies].join(", "));
    });

    it("without rejoin waits, has the image guard read no marks, no scale-down and no meta group to settle", async () => {
        const { cloud: plain, metaGroup } = await build({}, true);
        assert.strictEqual(metaGroup, undefined);
        assert.strictEqual(plain.ofType("pulumi-nodejs:dynamic/meshstack:NatsMetaGroup").length, 0);
        assert.strictEqual(plain.byName("nats-image-rollout").inputs.rejoinMarks, undefined);
        assert.strictEqual(plain.ofType("pulumi-nodejs:dynamic/meshstack:NatsRejoin").length, 0);
        assert.strictEqual(plain.ofType("pulumi-nodejs:dynamic/meshstack:NatsScaleDown").length, 0);
        assert.throws(() => plain.byName("nats-deployer"), "no deployer certificate when nothing dials the client port");
    });
});

describe("NatsCluster.argsProblem", () => {
    const nodes = (count: number) => Array.from({ length: count }, () => topology.nats[0]);

    it("takes an odd number of nodes from 1 to the limit", () => {
        for (let count = 1; count <= MAX_NATS_NODES; count += 2) assert.strictEqual(NatsCluster.argsProblem({ nodes: nodes(count) }), undefined, `${count} nodes`);
    });

    it("refuses no nodes, an even number, and more than the limit, naming the config key", () => {
        for (const count of [0, 2, 4, MAX_NATS_NODES + 1, MAX_NATS_NODES + 2]) {
            assert.strictEqual(NatsCluster.argsProblem({ nodes: nodes(count) }), `meshstack:natsNodeCount ${count} is not allowed; allowed: an odd integer from 1 to ${MAX_NATS_NODES}`);
        }
    });

    it("takes KV replicas up to the node count and refuses more", () => {
        assert.strictEqual(NatsCluster.argsProblem({ nodes: nodes(3), controlPlaneKv: { bucket: "kv", replicas: 3 } }), undefined);
        assert.strictEqual(NatsCluster.argsProblem({ nodes: nodes(3), controlPlaneKv: { bucket: "kv", replicas: 4 } }), "meshstack:natsKvReplicas 4 exceeds meshstack:natsNodeCount 3; allowed: 1 to 3");
    });
});
