import * as assert from "assert";
import { METADATA_GUARD_UNIT_NAME } from "../cloudinit/metadataGuard";
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import * as YAML from "yaml";
import {
    NATS_CLUSTER_SECRETS_FILE, NATS_DEFAULT_JETSTREAM_LIMITS, NATS_NODE_LAYOUT, NATS_SERVER_RELEASE, natsConfPath,
    renderNatsCloudConfig, renderNatsClusterSecrets, renderNatsConf, renderNatsInstallScript, renderNatsUnit,
} from "../cloudinit/nats";
import { natsServerCertProfile, natsRouteCertProfile } from "../cloudinit/natsCerts";
import { meshTopology, planMeshTopology, wgSubnet } from "../lib/topology";
import { renderSpokeWgFiles, WG_QUICK_UNIT } from "../cloudinit/wgMesh";
import { LoopbackNatsCluster } from "./support/natsCluster";
import { toolPath } from "./support/tools";

const run = promisify(execFile);
const PASSWORD = "Zx81routePassword0123456789abcdef";
const nodes = meshTopology({ hubInterfaceAddress: "10.44.0.1/24", natsNodeCount: 3, clusterName: "meshstack-dev", dnsDomain: "example.net" }).nats;
const nodeConf = renderNatsConf({ clusterName: "meshstack-dev", node: nodes[1], layout: NATS_NODE_LAYOUT, clientHost: "0.0.0.0", jetstream: NATS_DEFAULT_JETSTREAM_LIMITS });
const secrets = renderNatsClusterSecrets({ self: nodes[1], peers: nodes, password: PASSWORD });

describe("NATS topology (pure)", () => {
    it("gives node i the WireGuard address .10+i in the cache node's subnet", () => {
        assert.deepStrictEqual(nodes.map((n) => n.wgAddress), ["10.44.0.10", "10.44.0.11", "10.44.0.12"]);
        assert.strictEqual(wgSubnet("10.44.0.1/24"), "10.44.0.0/24");
    });

    it("refuses a subnet without room for the nodes, naming the config key", () => {
        const plan = (address: string) => planMeshTopology({ hubInterfaceAddress: address, natsNodeCount: 3, clusterName: "c" });
        assert.deepStrictEqual(plan("10.44.0.1/29"), { ok: false, error: "meshstack:wgCacheAddress 10.44.0.1/29: subnet 10.44.0.0/29 has no room for 3 NATS nodes at .10-.12; allowed: a prefix of /28 or wider" });
        assert.deepStrictEqual(plan("10.44.0.11/24"), { ok: false, error: "meshstack:wgCacheAddress 10.44.0.11/24: 10.44.0.11 collides with NATS node 1's WireGuard address; allowed: an address outside .10-.12" });
    });

    it("puts hostname, DNS name and WireGuard address in the route certificate, with serverAuth and clientAuth", () => {
        const profile = natsRouteCertProfile(nodes[0]);
        assert.deepStrictEqual([profile.dnsNames, profile.ipAddresses], [["meshstack-dev-0", "meshstack-dev-0.example.net"], ["10.44.0.10"]]);
        assert.deepStrictEqual(profile.uses.filter((u) => u.endsWith("_auth")), ["server_auth", "client_auth"]);
    });

    it("adds the service name to the data-plane certificate, serverAuth only", () => {
        const profile = natsServerCertProfile(nodes[0], "meshstack-dev.example.net");
        assert.ok(profile.dnsNames.includes("meshstack-dev.example.net"));
        assert.deepStrictEqual(profile.uses.filter((u) => u.endsWith("_auth")), ["server_auth"]);
    });
});

describe("nats.conf and the cluster-secrets include (pure)", () => {
    it("binds routes to the WireGuard address and monitoring to localhost", () => {
        assert.match(nodeConf, /listen: "10\.44\.0\.11:6222"/);
        assert.match(nodeConf, /^http: "127\.0\.0\.1:8222"$/m);
        assert.match(nodeConf, /^host: "0\.0\.0\.0"\nport: 4222$/m);
    });

    it("verifies clients against the client CA and routes against the route CA", () => {
        assert.match(nodeConf, /^tls \{\n {2}cert_file: "\/etc\/nats\/tls\/server\.crt"\n.*\n {2}ca_file: "\/etc\/nats\/tls\/client-ca\.crt"\n {2}verify: true/m);
        assert.match(nodeConf, /cluster \{[^]*tls \{\n {4}cert_file: "\/etc\/nats\/tls\/route\.crt"\n.*\n {4}ca_file: "\/etc\/nats\/tls\/route-ca\.crt"\n {4}verify: true/);
    });

    it("keeps the password out of nats.conf and includes the secrets file by a relative path inside the cluster block", () => {
        assert.ok(!nodeConf.includes(PASSWORD));
        assert.match(nodeConf, /cluster \{[^}]*\}[^}]*include "cluster-secrets\.conf"\n\}/);
    });

    it("routes to the other nodes only, with the credentials in the URL, and authorizes with the same password", () => {
        const routes = secrets.match(/nats-route:\/\/[^"]+/g);
        assert.deepStrictEqual(routes, [`nats-route://route:${PASSWORD}@10.44.0.10:6222`, `nats-route://route:${PASSWORD}@10.44.0.12:6222`]);
        assert.match(secrets, new RegExp(`authorization \\{\\n {2}user: "route"\\n {2}password: "${PASSWORD}"`));
    });

    it("refuses a password that would need escaping in a route URL", () => {
        assert.throws(() => renderNatsClusterSecrets({ self: nodes[0], peers: nodes, password: "has@and:in-it-0123456789" }), /letters and digits/);
    });
});

describe("nats-server -t on the rendered configs", function () {
    this.timeout(60_000);
    let cluster: LoopbackNatsCluster;
    before(async () => (cluster = await LoopbackNatsCluster.create()));
    after(async () => cluster?.destroy());

    for (const index of [0, 1, 2]) {
        it(`accepts node ${index}'s config with its certificates and 0600 secrets include`, async () => {
            const layout = cluster.layout(index);
            const { stdout, stderr } = await run(toolPath("nats-server"), ["-t", "-c", natsConfPath(layout)]);
            assert.match(stdout + stderr, /configuration file .* is valid/);
            assert.strictEqual(fs.statSync(path.join(layout.configDir, NATS_CLUSTER_SECRETS_FILE)).mode & 0o777, 0o600);
        });
    }

    it("reports the pinned version", async () => {
        const { stdout } = await run(toolPath("nats-server"), ["--version"]);
        assert.strictEqual(stdout.trim(), `nats-server: ${NATS_SERVER_RELEASE.version}`);
    });
});

describe("systemd unit, install script and cloud-config", function () {
    this.timeout(60_000);
    let dir: string;
    const unit = renderNatsUnit({ layout: NATS_NODE_LAYOUT, wants: [WG_QUICK_UNIT] });
    const script = renderNatsInstallScript({ layout: NATS_NODE_LAYOUT, monitorPort: 8222, readyTimeoutSeconds: 300 });
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const wireguard = renderSpokeWgFiles({
        address: nodes[0].wgAddress, subnet: "10.44.0.0/24", privateKey: "YOuCSn3sTnjBB0ZT+k3Jt6mW1PmSm0EhGUzKixuW2GA=",
        hub: { publicKey: "iIBAl9Nwao81+tKfMcp9c5V0EIUE4txeIAFcCHkGBVM=", endpoint: "45.79.1.2:51820" },
    });
    const cloudConfig = renderNatsCloudConfig({
        node: nodes[0], layout: NATS_NODE_LAYOUT, unit, installScript: script, wireguard,
        files: { routeCaPem: pem, routeCertPem: pem, routeKeyPem: pem, clientCaPem: pem, serverCertPem: pem, serverKeyPem: pem, natsConf: nodeConf, clusterSecrets: secrets },
    });
    before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-nats-render-"))));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("pulls in wg-quick@wg0 and starts after it (Wants=, so a failed wg0 is retried with every restart)", () => {
        assert.match(unit, /^Wants=network-online\.target wg-quick@wg0\.service$/m);
        assert.match(unit, /^After=network-online\.target wg-quick@wg0\.service$/m);
        assert.doesNotMatch(unit, /^(Requires|BindsTo)=/m);
    });

    it("restarts always, runs as the nats user, and carries no secret", () => {
        assert.match(unit, /^Restart=always$/m);
        assert.match(unit, /^User=nats$/m);
        assert.match(unit, /^ExecStart=\/usr\/local\/bin\/nats-server -c \/etc\/nats\/nats\.conf$/m);
        assert.ok(!/pass|Environment/i.test(unit));
    });

    it("passes systemd-analyze verify (binary path pointed at the test build, which must exist)", async () => {
        const testUnit = renderNatsUnit({ layout: { ...NATS_NODE_LAYOUT, binary: toolPath("nats-server") }, wants: [WG_QUICK_UNIT] });
        const file = path.join(dir, "nats-server.service");
        fs.writeFileSync(file, testUnit);
        const { stdout, stderr } = await run("systemd-analyze", ["verify", file]);
        assert.strictEqual((stdout + stderr).trim(), "");
    });

    it("install script pins the version and both checksums and passes shellcheck", async () => {
        assert.ok(script.includes(NATS_SERVER_RELEASE.sha256.amd64) && script.includes(NATS_SERVER_RELEASE.sha256.arm64));
        assert.match(script, /sha256sum --check --strict/);
        assert.match(script, /healthz\?js-server-only=true/);
        const file = path.join(dir, "install.sh");
        fs.writeFileSync(file, script);
        await run("shellcheck", [file]);
    });

    it("install script downloads from a configured mirror and checks the configured checksum (and shellcheck agrees)", async () => {
        const mirror = {
            ...NATS_SERVER_RELEASE,
            urlTemplate: "https://mirror.example.net/nats/{version}/nats-server-{version}-linux-{arch}.tar.gz?X-Amz-Signature=ab&x=1",
            sha256: { amd64: "a".repeat(64), arm64: "b".repeat(64) },
        };
        const mirrored = renderNatsInstallScript({ layout: NATS_NODE_LAYOUT, monitorPort: 8222, readyTimeoutSeconds: 60, release: mirror });
        assert.ok(mirrored.includes(`"https://mirror.example.net/nats/${NATS_SERVER_RELEASE.version}/nats-server-${NATS_SERVER_RELEASE.version}-linux-$arch.tar.gz?X-Amz-Signature=ab&x=1"`));
        assert.ok(mirrored.includes("a".repeat(64)) && !mirrored.includes(NATS_SERVER_RELEASE.sha256.amd64));
        const file = path.join(dir, "install-mirror.sh");
        fs.writeFileSync(file, mirrored);
        await run("shellcheck", [file]);
    });

    it("refuses a download URL that would break out of its shell word", () => {
        for (const urlTemplate of ["https://x/$(reboot)", "https://x/a b", 'https://x/"', "ftp://x/{arch}"]) {
            assert.throws(() => renderNatsInstallScript({ layout: NATS_NODE_LAYOUT, monitorPort: 8222, readyTimeoutSeconds: 60, release: { ...NATS_SERVER_RELEASE, urlTemplate } }), /download URL .* is not allowed/);
        }
    });

    it("is a valid cloud-config for cloud-init's own schema", async () => {
        const file = path.join(dir, "cloud-config.yaml");
        fs.writeFileSync(file, cloudConfig);
        // cloud-init's Python library is installed for the system interpreter.
        const { stdout } = await run("/usr/bin/python3", ["/usr/bin/cloud-init", "schema", "--config-file", file]);
        assert.match(stdout, /Valid cloud-config/);
    });

    it("installs wireguard-tools, writes the WireGuard files root-only after it, and brings wg0 up before nats-server", () => {
        const doc = YAML.parse(cloudConfig.replace(/^#cloud-config\n/, ""));
        assert.deepStrictEqual(doc.packages, ["wireguard-tools", "nftables"]);
        const byPath = Object.fromEntries((doc.write_files as { path: string }[]).map((f) => [f.path, f]));
        for (const [path, content] of [["/etc/wireguard/privatekey", wireguard.privateKey.content], ["/etc/wireguard/wg0.conf", wireguard.conf.content]]) {
            assert.deepStrictEqual(byPath[path], { path, content, permissions: "0600", owner: "root:root", defer: true }, path);
        }
        assert.deepStrictEqual(doc.runcmd, [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", METADATA_GUARD_UNIT_NAME], ["systemctl", "enable", "--now", "wg-quick@wg0.service"], ["/usr/local/sbin/meshstack-install-nats"]]);
    });

    it("writes secrets 0600 for the nats user after cloud-init created it", () => {
        const files = YAML.parse(cloudConfig.replace(/^#cloud-config\n/, "")).write_files as { path: string; permissions: string; owner: string; defer?: boolean }[];
        const byPath = Object.fromEntries(files.map((f) => [f.path, f]));
        for (const secret of ["/etc/nats/cluster-secrets.conf", "/etc/nats/tls/route.key", "/etc/nats/tls/server.key"]) {
            assert.deepStrictEqual([byPath[secret].permissions, byPath[secret].owner, byPath[secret].defer], ["0600", "nats:nats", true], secret);
        }
        assert.strictEqual(byPath["/etc/nats/nats.conf"].permissions, "0640");
    });
});
