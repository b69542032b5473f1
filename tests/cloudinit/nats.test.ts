import * as assert from "assert";
import { METADATA_GUARD_UNIT_NAME } from "../../cloudinit/metadataGuard";
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import * as YAML from "yaml";
import {
    NATS_CLUSTER_SECRETS_FILE, NATS_DEFAULT_JETSTREAM_LIMITS, NATS_NODE_LAYOUT, NATS_SERVER_RELEASE, NATS_SYSTEM_ACCOUNT_FILE, NATS_UNIT_NAME, natsConfPath,
    natsRouteAddresses, renderNatsCloudConfig, renderNatsClusterSecrets, renderNatsConf, renderNatsPrepareScript, renderNatsRoutes, renderNatsSystemAccount, renderNatsUnit,
} from "../../cloudinit/nats";
import { agentFiles } from "../../cloudinit/agent";
import { AGENT_TIMER_NAME } from "../../cloudinit/agent/layout";
import { NODE_BOOTSTRAP_SCRIPT_PATH, PUBLISH_URL_PLACEHOLDER, renderNodeBootstrapScript, wgInterfaceSection } from "../../cloudinit/nodeBootstrap";
import { natsServerCertProfile, natsRouteCertProfile } from "../../cloudinit/natsCerts";
import { meshTopology, planMeshTopology, wgSubnet } from "../../lib/topology";
import { WG_QUICK_UNIT } from "../../cloudinit/wgMesh";
import { LoopbackNatsCluster } from "../support/natsCluster";
import { toolPath } from "../support/tools";

const run = promisify(execFile);
const PASSWORD = "Zx81routePassword0123456789abcdef";
const SYSTEM_PASSWORD = "Zx81systemPassword0123456789abcdef";
const nodes = meshTopology({ hubInterfaceAddress: "10.44.0.1/24", natsNodeCount: 3, clusterName: "meshstack-dev", dnsDomain: "example.net" }).nats;
// Rendered in beforeEach, not at load time: mutation testing (npm run mutate)
// then knows which tests cover each line of the renderers.
let nodeConf: string;
let secrets: string;
let routes: string;
let systemAccount: string;
function renderNodeFiles(): void {
    nodeConf = renderNatsConf({ clusterName: "meshstack-dev", node: nodes[1], layout: NATS_NODE_LAYOUT, clientHost: "0.0.0.0", jetstream: NATS_DEFAULT_JETSTREAM_LIMITS });
    secrets = renderNatsClusterSecrets({ password: PASSWORD });
    routes = renderNatsRoutes({ routes: natsRouteAddresses(nodes[1], nodes), password: PASSWORD });
    systemAccount = renderNatsSystemAccount({ password: SYSTEM_PASSWORD });
}

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

describe("nats.conf and its cluster includes (pure)", () => {
    beforeEach(renderNodeFiles);

    it("binds routes to the WireGuard address and monitoring to localhost", () => {
        assert.match(nodeConf, /listen: "10\.44\.0\.11:6222"/);
        assert.match(nodeConf, /^http: "127\.0\.0\.1:8222"$/m);
        assert.match(nodeConf, /^host: "0\.0\.0\.0"\nport: 4222$/m);
    });

    it("verifies clients against the client CA and routes against the route CA", () => {
        assert.match(nodeConf, /^tls \{\n {2}cert_file: "\/etc\/nats\/tls\/server\.crt"\n.*\n {2}ca_file: "\/etc\/nats\/tls\/client-ca\.crt"\n {2}verify: true/m);
        assert.match(nodeConf, /cluster \{[^]*tls \{\n {4}cert_file: "\/etc\/nats\/tls\/route\.crt"\n.*\n {4}ca_file: "\/etc\/nats\/tls\/route-ca\.crt"\n {4}verify: true/);
    });

    it("presents the server key on the client port and the route key on routes", () => {
        assert.match(nodeConf, /^tls \{\n {2}cert_file: .*\n {2}key_file: "\/etc\/nats\/tls\/server\.key"\n/m);
        assert.match(nodeConf, /cluster \{[^]*tls \{\n {4}cert_file: .*\n {4}key_file: "\/etc\/nats\/tls\/route\.key"\n/);
    });

    // Every value that can come from outside (config, layout, topology); the
    // route user and include path are constants, the ports numbers.
    const unquotable: [string, () => unknown, RegExp][] = [
        ["server_name", () => renderNatsConf({ clusterName: "c", node: { ...nodes[1], hostname: "bad\"name" }, layout: NATS_NODE_LAYOUT, clientHost: "0.0.0.0", jetstream: NATS_DEFAULT_JETSTREAM_LIMITS }), /^server_name "bad\\"name" holds characters/],
        ["client host", () => renderNatsConf({ clusterName: "c", node: nodes[1], layout: NATS_NODE_LAYOUT, clientHost: "0.0.0.0\n", jetstream: NATS_DEFAULT_JETSTREAM_LIMITS }), /^client host "0\.0\.0\.0\\n" holds/],
        ["cluster name", () => renderNatsConf({ clusterName: "my{cluster}", node: nodes[1], layout: NATS_NODE_LAYOUT, clientHost: "0.0.0.0", jetstream: NATS_DEFAULT_JETSTREAM_LIMITS }), /^cluster name "my\{cluster\}" holds/],
        ["store_dir", () => renderNatsConf({ clusterName: "c", node: nodes[1], layout: { ...NATS_NODE_LAYOUT, storeDir: "/var/lib/$nats" }, clientHost: "0.0.0.0", jetstream: NATS_DEFAULT_JETSTREAM_LIMITS }), /^store_dir "\/var\/lib\/\$nats" holds/],
        ["TLS path", () => renderNatsConf({ clusterName: "c", node: nodes[1], layout: { ...NATS_NODE_LAYOUT, tlsDir: "/etc/nats/#tls" }, clientHost: "0.0.0.0", jetstream: NATS_DEFAULT_JETSTREAM_LIMITS }), /^TLS path "\/etc\/nats\/#tls\/server\.crt" holds/],
        ["route listen address", () => renderNatsConf({ clusterName: "c", node: { ...nodes[1], wgAddress: "10.0.0.1;" }, layout: NATS_NODE_LAYOUT, clientHost: "0.0.0.0", jetstream: NATS_DEFAULT_JETSTREAM_LIMITS }), /^route listen address "10\.0\.0\.1;:6222" holds/],
        ["route URL", () => renderNatsRoutes({ routes: natsRouteAddresses(nodes[0], [nodes[0], { ...nodes[1], wgAddress: "10.0.0.1]" }]), password: PASSWORD }), /^route URL ".*10\.0\.0\.1\]:6222" holds/],
    ];
    for (const [what, render, message] of unquotable) {
        it(`refuses a ${what} nats.conf would need escaped, naming it and what is allowed`, () => {
            assert.throws(render, (err: Error) => {
                assert.match(err.message, message);
                assert.match(err.message, /allowed: letters, digits and \. _ : \/ @ \+ = , - space$/);
                return true;
            });
        });
    }

    it("keeps the password out of nats.conf and includes the secrets and the agent's routes by relative paths inside the cluster block", () => {
        assert.ok(!nodeConf.includes(PASSWORD));
        assert.match(nodeConf, /cluster \{[^}]*\}[^}]*include "cluster-secrets\.conf"\n {2}include "cluster-routes\.conf"\n\}/);
    });

    it("routes to the other nodes only, with the credentials in the URL, one route per line", () => {
        const urls = routes.match(/nats-route:\/\/[^"]+/g);
        assert.deepStrictEqual(urls, [`nats-route://route:${PASSWORD}@10.44.0.10:6222`, `nats-route://route:${PASSWORD}@10.44.0.12:6222`]);
        assert.ok(routes.includes(`routes: [\n  "${urls![0]}"\n  "${urls![1]}"\n]\n`), "one route per line in the routes list");
    });

    it("authorizes routes with the same password and lists no route in the secrets include", () => {
        assert.match(secrets, new RegExp(`authorization \\{\\n {2}user: "route"\\n {2}password: "${PASSWORD}"`));
        assert.doesNotMatch(secrets, /routes|nats-route/);
    });


    it("lets a client that sends no credentials in as the one user of the global account, and includes the system account's user at the top level", () => {
        assert.match(nodeConf, /^authorization \{\n {2}users = \[ \{ user: "meshstack-client" \} \]\n\}\nno_auth_user: "meshstack-client"\ninclude "system-account\.conf"\n/m);
        assert.ok(!nodeConf.includes(SYSTEM_PASSWORD));
    });

    it("gives the system account its default name, $SYS, and one user with the password (the meta group's state lives under that name)", () => {
        assert.match(systemAccount, new RegExp(`^accounts \\{\\n {2}\\$SYS \\{\\n {4}users = \\[ \\{ user: "meshstack-system", password: "${SYSTEM_PASSWORD}" \\} \\]\\n {2}\\}\\n\\}\\n$`, "m"));
        assert.throws(() => renderNatsSystemAccount({ password: "short0123" }), /^Error: the NATS system account password must be at least 16 letters and digits \(it goes into nats\.conf unescaped\)$/);
    });

    it("refuses a password that would need escaping in a route URL, wherever the bad character is", () => {
        for (const password of ["has@and:in-it-0123456789", "@0123456789abcdefgh", "0123456789abcdefgh@", "short0123"]) {
            assert.throws(() => renderNatsClusterSecrets({ password }), /at least 16 letters and digits/, password);
            assert.throws(() => renderNatsRoutes({ routes: ["10.44.0.10:6222"], password }), /at least 16 letters and digits/, password);
        }
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
            assert.strictEqual(fs.statSync(path.join(layout.configDir, NATS_SYSTEM_ACCOUNT_FILE)).mode & 0o777, 0o600);
        });
    }

    it("applies the JetStream file and memory store limits from nats.conf (a node's disk is not the store's to fill)", async () => {
        cluster.start(0);
        try {
            let varz: { jetstream?: { config?: { max_storage?: number; max_memory?: number } } } = {};
            // A config nats-server refuses ends the process at once: fail then, not after the wait.
            const deadline = Date.now() + 30_000;
            for (;;) {
                assert.ok(cluster.isRunning(0), `nats-server exited: ${cluster.logs(0)}`);
                const response = await cluster.monitor(0, "/varz").catch(() => undefined);
                if (response?.ok) {
                    varz = (await response.json()) as typeof varz;
                    break;
                }
                assert.ok(Date.now() < deadline, "nats-server served no /varz within 30 s");
                await new Promise((resolve) => setTimeout(resolve, 100));
            }
            assert.deepStrictEqual(
                [varz.jetstream?.config?.max_storage, varz.jetstream?.config?.max_memory],
                [NATS_DEFAULT_JETSTREAM_LIMITS.maxFileBytes, NATS_DEFAULT_JETSTREAM_LIMITS.maxMemoryBytes],
            );
        } finally {
            await cluster.stop(0, "SIGKILL");
        }
    });

    it("reports the pinned version", async () => {
        const { stdout } = await run(toolPath("nats-server"), ["--version"]);
        assert.strictEqual(stdout.trim(), `nats-server: ${NATS_SERVER_RELEASE.version}`);
    });
});

describe("systemd unit, prepare script and cloud-config", function () {
    this.timeout(60_000);
    let dir: string;
    let unit: string;
    let script: string;
    let cloudConfig: string;
    beforeEach(() => {
        renderNodeFiles();
        unit = renderNatsUnit({ layout: NATS_NODE_LAYOUT, wants: [WG_QUICK_UNIT] });
        script = renderNatsPrepareScript({ layout: NATS_NODE_LAYOUT });
        const interfaceSection = wgInterfaceSection({ address: `${nodes[0].wgAddress}/24`, listenPort: 51820 });
        const bootstrapScript = renderNodeBootstrapScript({
            node: nodes[0].hostname, publishPutUrl: PUBLISH_URL_PLACEHOLDER, listenPort: 51820, address: `${nodes[0].wgAddress}/24`, subnet: "10.44.0.0/24", interfaceSection,
        });
        const agent = agentFiles({
            node: nodes[0].hostname, endpoint: "https://us-east-1.linodeobjects.com", region: "us-east-1", bucket: "runtime", key: "desired/dev/meshstack-dev-0.json",
            wgAddress: `${nodes[0].wgAddress}/24`, wgListenPort: 51820, interfaceSection,
            nats: { layout: NATS_NODE_LAYOUT, certificates: [{ file: "route-ca.crt" }, { file: "route.crt", matchesKey: "route.key", issuer: "route-ca.crt" }], routeUser: "route", routePasswordPath: "/etc/meshstack/nats-route-password", monitorPort: 8222 },
        }, { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "c2VjcmV0LXNlY3JldA" });
        cloudConfig = renderNatsCloudConfig({
            node: nodes[0], layout: NATS_NODE_LAYOUT, unit, prepareScript: script, bootstrapScript, agent,
            files: { natsConf: nodeConf, clusterSecrets: secrets, routePassword: PASSWORD, systemAccount },
        });
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

    describe("sandboxing, as `systemd-analyze security --offline=yes` scores the unit", () => {
        interface SecurityCheck {
            name: string;
            set: boolean;
            description: string;
        }
        let checks: SecurityCheck[];
        beforeEach(async () => {
            const file = path.join(dir, "security", NATS_UNIT_NAME);
            fs.mkdirSync(path.dirname(file), { recursive: true });
            fs.writeFileSync(file, unit);
            const { stdout } = await run("systemd-analyze", ["security", "--offline=yes", "--json=short", file]);
            checks = JSON.parse(stdout) as SecurityCheck[];
        });
        const failing = (prefix: string) => checks.filter((c) => c.name.startsWith(prefix) && !c.set).map((c) => `${c.name} ${c.description}`);

        const required: [string, string][] = [
            ["NoNewPrivileges=", "a setuid binary or a file capability cannot give the server more than it started with"],
            ["ProtectSystem=", "strict: the whole file system is read-only except the JetStream store, so a compromised server cannot rewrite binaries, configs or keys"],
            ["CapabilityBoundingSet=~", "no capability at all: every port nats-server binds is above 1024 and it changes no owner, clock or network setting"],
            ["MemoryDenyWriteExecute=", "no memory both writable and executable: the Go runtime does not need it, injected code does"],
            ["User=/DynamicUser=", "the server runs as the nats user, never root"],
        ];
        for (const [check, reason] of required) {
            it(`passes ${check}: ${reason}`, () => {
                assert.ok(checks.some((c) => c.name.startsWith(check)), `systemd-analyze reported no ${check} check`);
                assert.deepStrictEqual(failing(check), []);
            });
        }

        it("is exposed nowhere else than the network it serves and the options the unit does not set yet", () => {
            // Not set in the unit; each would be a hardening change of its
            // own, proven by a VM boot first (a wrong syscall filter or
            // device policy kills the server only at runtime).
            const accepted = [
                "RestrictAddressFamilies=~AF_(INET|INET6)", // it serves clients and routes over TCP
                "PrivateNetwork=", // the same
                "IPAddressDeny=", // the Linode firewall filters sources; routes bind only the WireGuard address
                "RestrictAddressFamilies=~AF_UNIX", // allowed by the unit for local name-service lookups
                "SystemCallFilter=~", "DeviceAllow=", "ProtectProc=", "ProcSubset=", "PrivateUsers=", "PrivateMounts=", "RemoveIPC=", "RootDirectory=/RootImage=",
            ];
            const exposed = checks.filter((c) => !c.set && !accepted.some((a) => c.name.startsWith(a))).map((c) => `${c.name} ${c.description}`);
            assert.deepStrictEqual(exposed, []);
        });
    });

    it("prepare script makes the store, installs no nats-server and names no release, and passes shellcheck", async () => {
        assert.match(script, /^install -d -o nats -g nats -m 0700 \/var\/lib\/nats$/m);
        assert.doesNotMatch(script, /curl|tar |sha256|nats-server-v|v\d+\.\d+\.\d+/, "the release comes with the desired state, so that changing it changes no user-data");
        assert.doesNotMatch(script, /systemctl (start|enable|restart)/, "the agent starts nats-server once it has certificates");
        const file = path.join(dir, "prepare.sh");
        fs.writeFileSync(file, script);
        await run("shellcheck", [file]);
    });

    it("the cloud-config names no nats-server release: neither the version nor a checksum", () => {
        for (const pinned of [NATS_SERVER_RELEASE.version, NATS_SERVER_RELEASE.sha256.amd64, NATS_SERVER_RELEASE.sha256.arm64]) assert.ok(!cloudConfig.includes(pinned), pinned);
    });

    it("is a valid cloud-config for cloud-init's own schema", async () => {
        const file = path.join(dir, "cloud-config.yaml");
        fs.writeFileSync(file, cloudConfig);
        // cloud-init's Python library is installed for the system interpreter.
        const { stdout } = await run("/usr/bin/python3", ["/usr/bin/cloud-init", "schema", "--config-file", file]);
        assert.match(stdout, /Valid cloud-config/);
    });

    it("runs the first boot (keys, wg0, publishing) before the store is made, then starts the agent's timer", () => {
        const doc = YAML.parse(cloudConfig.replace(/^#cloud-config\n/, ""));
        assert.deepStrictEqual(doc.runcmd, [
            ["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", METADATA_GUARD_UNIT_NAME],
            [NODE_BOOTSTRAP_SCRIPT_PATH], ["/usr/local/sbin/meshstack-prepare-nats"], ["systemctl", "enable", "--now", AGENT_TIMER_NAME],
        ]);
    });

    it("carries no private key and no certificate: keys are born on the node, certificates come through the agent", () => {
        assert.doesNotMatch(cloudConfig, /-----BEGIN [A-Z ]+-----\\?n?\s*[A-Za-z0-9+/]{16}/);
        assert.doesNotMatch(cloudConfig, /PrivateKey = [A-Za-z0-9+/]{43}=/);
    });

    const writtenFiles = () => YAML.parse(cloudConfig.replace(/^#cloud-config\n/, "")).write_files as { path: string; permissions: string; owner: string; defer?: boolean }[];

    it("writes the secrets 0600: the route authorization for the nats user after cloud-init created it, the password for the root-only agent", () => {
        const byPath = Object.fromEntries(writtenFiles().map((f) => [f.path, f]));
        assert.deepStrictEqual([byPath["/etc/nats/cluster-secrets.conf"].permissions, byPath["/etc/nats/cluster-secrets.conf"].owner, byPath["/etc/nats/cluster-secrets.conf"].defer], ["0600", "nats:nats", true]);
        assert.deepStrictEqual([byPath["/etc/meshstack/nats-route-password"].permissions, byPath["/etc/meshstack/nats-route-password"].owner], ["0600", "root:root"]);
        assert.deepStrictEqual([byPath["/etc/nats/system-account.conf"].permissions, byPath["/etc/nats/system-account.conf"].owner, byPath["/etc/nats/system-account.conf"].defer], ["0600", "nats:nats", true]);
    });

    it("writes every file with its mode and owner; only files of the nats user wait for the final stage", () => {
        const modes = writtenFiles().map((f) => `${f.path} ${f.permissions} ${f.owner}${f.defer ? " deferred" : ""}`);
        assert.deepStrictEqual(modes, [
            "/etc/nats/nats.conf 0640 root:nats deferred",
            "/etc/nats/cluster-secrets.conf 0600 nats:nats deferred",
            "/etc/nats/system-account.conf 0600 nats:nats deferred",
            "/etc/meshstack/nats-route-password 0600 root:root",
            "/etc/systemd/system/nats-server.service 0644 root:root",
            "/usr/local/sbin/meshstack-prepare-nats 0700 root:root",
            "/usr/local/sbin/meshstack-node-bootstrap 0700 root:root",
            "/etc/meshstack/agent.conf 0644 root:root",
            "/etc/meshstack/agent-credentials.curl 0600 root:root",
            "/usr/local/lib/meshstack/agent-render.py 0700 root:root",
            "/usr/local/sbin/meshstack-agent 0700 root:root",
            "/etc/systemd/system/meshstack-agent.service 0644 root:root",
            "/etc/systemd/system/meshstack-agent.timer 0644 root:root",
            "/etc/meshstack/metadata-guard.nft 0644 root:root",
            "/etc/systemd/system/meshstack-metadata-guard.service 0644 root:root",
        ]);
    });

    it("names the node (hostname and, with a DNS domain, its fqdn) and creates the nats system user, locked and without a shell", () => {
        const doc = YAML.parse(cloudConfig.replace(/^#cloud-config\n/, ""));
        assert.deepStrictEqual([doc.hostname, doc.fqdn], ["meshstack-dev-0", "meshstack-dev-0.example.net"]);
        assert.deepStrictEqual(doc.users, [
            "default",
            { name: "nats", system: true, shell: "/usr/sbin/nologin", homedir: "/var/lib/nats", no_create_home: true, lock_passwd: true },
        ]);
    });

    it("pulls in and orders after every unit it is given", () => {
        const twoUnits = renderNatsUnit({ layout: NATS_NODE_LAYOUT, wants: [WG_QUICK_UNIT, "other.service"] });
        assert.match(twoUnits, /^Wants=network-online\.target wg-quick@wg0\.service other\.service$/m);
        assert.match(twoUnits, /^After=network-online\.target wg-quick@wg0\.service other\.service$/m);
    });
});
