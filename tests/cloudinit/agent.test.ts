/**
 * The node agent (cloudinit/agent.ts) as it runs on a node: its python
 * renderer on sample desired states, its bash script end to end against
 * MinIO with curl's own SigV4 signing, relocated into a temp dir
 * (MESHSTACK_AGENT_ROOT), and its units as systemd reads them.
 */
import { truncatedPrivateKeyPem } from "../fixtures/privateKeyPem";
import { sshEd25519PublicKey } from "../fixtures/sshPublicKey";
import * as assert from "assert";
import { execFile, execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import {
    AGENT_INTERVAL_SECONDS, AGENT_RUN_TIMEOUT_SECONDS, AgentParams, NATS_SERVER_MOVE_LIMITS, NATS_SERVER_MOVE_REPORT_DEADLINE_SECONDS,
    renderAgentCredentials, renderAgentRenderer, renderAgentScript, renderAgentTimer, renderAgentUnit,
} from "../../cloudinit/agent";
import { AGENT_CREDENTIALS_PATH, AGENT_SCRIPT_PATH, AGENT_STATE_DIR, AGENT_TIMER_NAME, AGENT_UNIT_NAME, ROOT_AUTHORIZED_KEYS_PATH } from "../../cloudinit/agent/layout";
import { agentKeyId, sealAgentKey } from "../../lib/agentKey";
import { presignObjectUrl } from "../../providers/s3";
import { NATS_NODE_LAYOUT, NATS_ROUTE_PASSWORD_PATH, NATS_ROUTE_USER, NATS_STOP_TIMEOUT_SECONDS, renderNatsRoutes } from "../../cloudinit/nats";
import { renderNodeBootstrapScript, wgInterfaceSection } from "../../cloudinit/nodeBootstrap";
import { hubInterfaceSection } from "../../cloudinit/wgCache";
import { renderPeer, WG_CONF_PATH } from "../../cloudinit/wgMesh";
import { DesiredPeer, DesiredState, RUNTIME_FORMAT_VERSION } from "../../lib/runtimeChannel";
import { agentNode } from "../support/agentSandbox";
import { MinioServer } from "../support/minio";
import { toolPath } from "../support/tools";

const run = promisify(execFile);
const SUBNET = "10.44.0.0/24";
const PASSWORD = "Zx81routePassword0123456789abcdef";
const wgGenkey = () => execFileSync(toolPath("wg"), ["genkey"]).toString().trim();
const wgPubkey = (privateKey: string) => execFileSync(toolPath("wg"), ["pubkey"], { input: `${privateKey}\n` }).toString().trim();

const hubParams = (overrides: Partial<AgentParams> = {}): AgentParams => ({
    node: "wg-cache", endpoint: "https://us-east-1.linodeobjects.com", region: "us-east-1", bucket: "meshstack-dev-runtime", key: "desired/dev/wg-cache.json",
    wgAddress: "10.44.0.1/24", wgListenPort: 51820,
    interfaceSection: hubInterfaceSection({ address: "10.44.0.1/24", listenPort: 51820, subnet: SUBNET }),
    ...overrides,
});
const NATS_CERTIFICATES = [
    { file: "route-ca.crt" }, { file: "route.crt", matchesKey: "route.key", issuer: "route-ca.crt" },
    { file: "client-ca.crt" }, { file: "server.crt", matchesKey: "server.key", issuer: "client-ca.crt" },
];
const natsParams = (): AgentParams => ({
    node: "meshstack-dev-1", endpoint: "https://us-east-1.linodeobjects.com", region: "us-east-1", bucket: "meshstack-dev-runtime", key: "desired/dev/meshstack-dev-1.json",
    wgAddress: "10.44.0.11/24", wgListenPort: 51820,
    interfaceSection: wgInterfaceSection({ address: "10.44.0.11/24", listenPort: 51820 }),
    nats: { layout: NATS_NODE_LAYOUT, certificates: NATS_CERTIFICATES, routeUser: NATS_ROUTE_USER, routePasswordPath: NATS_ROUTE_PASSWORD_PATH, monitorPort: 8222 },
});

const peerKeys = [wgPubkey(wgGenkey()), wgPubkey(wgGenkey()), wgPubkey(wgGenkey())];
const hubPeers: DesiredPeer[] = [
    { name: "meshstack-dev-0", publicKey: peerKeys[0], endpoint: "203.0.113.10:51820", allowedIps: ["10.44.0.10/32"], keepaliveSeconds: 25 },
    { name: "meshstack-dev-1", publicKey: peerKeys[1], endpoint: "203.0.113.11:51820", allowedIps: ["10.44.0.11/32"], keepaliveSeconds: 25 },
    { name: "laptop-ana", publicKey: peerKeys[2], allowedIps: ["10.44.0.200/32"] },
];
const SSH_KEYS = [sshEd25519PublicKey(1, "ops@example"), sshEd25519PublicKey(2)];
const hubState = (overrides: Partial<DesiredState> = {}): DesiredState => ({
    version: RUNTIME_FORMAT_VERSION, node: "wg-cache", instanceId: "100", wireguard: { peers: hubPeers }, authorizedKeys: SSH_KEYS, ...overrides,
});
const PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUTWVzaHN0YWNr\n-----END CERTIFICATE-----\n";
const NATS_ROUTES = ["10.44.0.10:6222", "10.44.0.12:6222"];
const natsState = (overrides: Partial<DesiredState> = {}): DesiredState => ({
    version: RUNTIME_FORMAT_VERSION, node: "meshstack-dev-1", instanceId: "201",
    wireguard: { peers: [{ name: "wg-cache", publicKey: peerKeys[2], endpoint: "203.0.113.1:51820", allowedIps: [SUBNET], keepaliveSeconds: 25 }, { ...hubPeers[0] }] },
    certificates: Object.fromEntries(NATS_CERTIFICATES.map((c) => [c.file, PEM])),
    natsRoutes: NATS_ROUTES,
    authorizedKeys: SSH_KEYS,
    ...overrides,
});

/** What wg-quick and wg syncconf should get for these peers, by the TS renderer of [Peer] sections. */
const peerText = (peers: DesiredPeer[]) =>
    peers.map((p) => renderPeer({ comment: p.name, publicKey: p.publicKey, endpoint: p.endpoint, allowedIps: p.allowedIps.join(", "), keepaliveSeconds: p.keepaliveSeconds })).join("\n");

describe("node agent", function () {
    this.timeout(60_000);
    let dir: string;
    before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-agent-"))));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    describe("renderer (python3, on sample desired states)", () => {
        function render(params: AgentParams, doc: unknown | ((node: { privateKey: string }) => unknown), instanceId: string, credentials?: { accessKeyId: string; secretAccessKey: string }) {
            const node = agentNode(dir, params, { instanceId, routePassword: PASSWORD, credentials });
            const { root, privateKey } = node;
            if (typeof doc === "function") doc = doc(node);
            const renderer = path.join(root, "agent-render.py");
            fs.writeFileSync(renderer, renderAgentRenderer(params));
            const docFile = path.join(root, "desired.json");
            fs.writeFileSync(docFile, typeof doc === "string" ? doc : JSON.stringify(doc));
            const stage = fs.mkdtempSync(path.join(root, "stage-"));
            const result = spawnSync("python3", [renderer, docFile, stage, params.node, instanceId], { env: { ...process.env, MESHSTACK_AGENT_ROOT: root }, encoding: "utf8" });
            const staged = (file: string) => fs.readFileSync(path.join(stage, file), "utf8");
            const mode = (file: string) => fs.statSync(path.join(stage, file)).mode & 0o777;
            return { status: result.status, stdout: result.stdout, stderr: result.stderr, staged, mode, files: () => fs.readdirSync(stage).sort(), privateKey };
        }

        it("stages the hub's wg0.conf: its [Interface] as the first boot wrote it, then one [Peer] per desired peer", () => {
            const params = hubParams();
            const out = render(params, hubState(), "100");
            assert.strictEqual(out.status, 0, out.stderr);
            assert.strictEqual(
                out.staged("wg0.conf"),
                "# meshstack WireGuard (written by meshstack-agent from the desired state; edits are overwritten).\n" + params.interfaceSection + "\n" + peerText(hubPeers),
            );
            assert.deepStrictEqual([out.files(), out.mode("wg0.conf")], [["authorized_keys", "wg-sync.conf", "wg0.conf"], 0o600]);
            assert.strictEqual(out.stdout.trim(), "3 peer(s), 2 ssh key(s)");
        });

        it("stages wg-sync.conf in wg's own format for syncconf: the node's key, its port and the same peers, 0600", () => {
            const out = render(hubParams(), hubState(), "100");
            assert.strictEqual(out.staged("wg-sync.conf"), `[Interface]\nPrivateKey = ${out.privateKey}\nListenPort = 51820\n\n` + peerText(hubPeers));
            assert.strictEqual(out.mode("wg-sync.conf"), 0o600);
        });

        it("renders a peer with several allowed IPs on one line, as wg-quick writes it", () => {
            const peers = [{ ...hubPeers[0], allowedIps: ["10.44.0.10/32", "10.44.0.128/25"] }];
            const out = render(hubParams(), hubState({ wireguard: { peers } }), "100");
            assert.strictEqual(out.status, 0, out.stderr);
            assert.match(out.staged("wg0.conf"), /^AllowedIPs = 10\.44\.0\.10\/32, 10\.44\.0\.128\/25$/m);
        });

        it("stages routes.conf exactly as renderNatsRoutes renders the same routes and password, with the certificates", () => {
            const out = render(natsParams(), natsState(), "201");
            assert.strictEqual(out.status, 0, out.stderr);
            assert.strictEqual(out.staged("routes.conf"), renderNatsRoutes({ routes: NATS_ROUTES, password: PASSWORD }));
            assert.deepStrictEqual(out.files(), ["authorized_keys", "client-ca.crt", "route-ca.crt", "route.crt", "routes.conf", "server.crt", "wg-sync.conf", "wg0.conf"]);
            assert.deepStrictEqual([out.staged("route.crt"), out.mode("route.crt"), out.mode("routes.conf")], [PEM, 0o644, 0o600]);
            assert.strictEqual(out.stdout.trim(), "2 peer(s), 2 route(s), 4 certificate(s), 2 ssh key(s)");
        });

        it("stages an offered agents' key exactly as renderAgentCredentials renders the same pair: one format for the first boot and the switch", () => {
            const next = { accessKeyId: "meshstack-agent-next", secretAccessKey: "NextSecret+/=_-0123456789" };
            const offer = (node: { privateKey: string }) => hubState({
                agentKey: { id: agentKeyId(next.accessKeyId), sealed: sealAgentKey(next, wgPubkey(node.privateKey)), reportUrl: "https://h/b/reports/k?X-Amz-Signature=ab" },
            });
            const out = render(hubParams(), offer, "100", { accessKeyId: "meshstack-agent-now", secretAccessKey: "NowSecret0123456789" });
            assert.strictEqual(out.status, 0, out.stderr);
            assert.strictEqual(out.staged("agent-credentials.curl"), renderAgentCredentials(next.accessKeyId, next.secretAccessKey));
            assert.strictEqual(out.stdout.trim(), `3 peer(s), 2 ssh key(s), agents' key ${agentKeyId(next.accessKeyId)} (switching)`);
        });

        it("waits (exit 3, nothing staged) on a state made for another instance: a predecessor's, still in the bucket", () => {
            const out = render(hubParams(), hubState({ instanceId: "99" }), "100");
            assert.strictEqual(out.status, 3, out.stderr);
            assert.match(out.stderr, /desired state is for instance '99', this is 100: waiting for pulumi up to write this instance's/);
            assert.deepStrictEqual(out.files(), []);
        });

        const privateKeyPem = truncatedPrivateKeyPem("EC PRIVATE KEY");
        const refused: [string, () => [AgentParams, unknown, string], RegExp][] = [
            ["a state for another node", () => [hubParams(), hubState({ node: "meshstack-dev-0" }), "100"], /desired state names node 'meshstack-dev-0', not wg-cache/],
            ["a key that is not a WireGuard key", () => [hubParams(), hubState({ wireguard: { peers: [{ ...hubPeers[0], publicKey: "c2VjcmV0" }] } }), "100"], /peer meshstack-dev-0: public key 'c2VjcmV0' is not a WireGuard key, or is listed twice/],
            ["a key listed twice", () => [hubParams(), hubState({ wireguard: { peers: [hubPeers[0], { ...hubPeers[1], publicKey: hubPeers[0].publicKey }] } }), "100"], /peer meshstack-dev-1: public key .* is not a WireGuard key, or is listed twice/],
            ["allowed IPs outside the subnet", () => [hubParams(), hubState({ wireguard: { peers: [{ ...hubPeers[0], allowedIps: ["0.0.0.0/0"] }] } }), "100"], /peer meshstack-dev-0: allowed IPs 0\.0\.0\.0\/0 are outside 10\.44\.0\.0\/24/],
            ["allowed IPs of another family", () => [hubParams(), hubState({ wireguard: { peers: [{ ...hubPeers[0], allowedIps: ["fd00::/64"] }] } }), "100"], /peer meshstack-dev-0: allowed IPs fd00::\/64 are outside 10\.44\.0\.0\/24/],
            ["a private key in the document", () => [natsParams(), natsState({ certificates: { ...natsState().certificates, "route.key": privateKeyPem } }), "201"], /desired state carries private key material; refused/],
            ["a document that is not JSON", () => [hubParams(), "{ half", "100"], /desired state is not JSON/],
            ["a wireguard section that is not an object", () => [hubParams(), { ...hubState(), wireguard: [] }, "100"], /desired state has no wireguard\.peers list of objects/],
            ["a peer that is not an object", () => [hubParams(), { ...hubState(), wireguard: { peers: ["meshstack-dev-0"] } }, "100"], /desired state has no wireguard\.peers list of objects/],
            ["another format version", () => [hubParams(), hubState({ version: 2 }), "100"], /desired state has version 2; this agent reads version 1/],
            ["a peer name that would break out of its comment", () => [hubParams(), hubState({ wireguard: { peers: [{ ...hubPeers[0], name: "x\n[Peer]" }] } }), "100"], /peer name 'x\\n\[Peer\]' is not a plain name/],
            ["an endpoint that is not ipv4:port", () => [hubParams(), hubState({ wireguard: { peers: [{ ...hubPeers[0], endpoint: "example.net:51820" }] } }), "100"], /endpoint 'example\.net:51820' is not ipv4:port/],
            ["a NATS route outside the subnet", () => [natsParams(), natsState({ natsRoutes: ["198.51.100.7:6222"] }), "201"], /route '198\.51\.100\.7:6222' is not ipv4:port inside 10\.44\.0\.0\/24/],
            ["a NATS state missing a certificate", () => [natsParams(), natsState({ certificates: { "route.crt": PEM } }), "201"], /desired state certificates are \['route\.crt'\]; expected/],
            ["two SSH keys in one item", () => [hubParams(), hubState({ authorizedKeys: [SSH_KEYS.join("\n")] }), "100"], /authorizedKeys item 0 holds a line break or another control character; one public key per item, on one line/],
            ["an SSH key with an options prefix", () => [hubParams(), hubState({ authorizedKeys: [`from="0.0.0.0/0" ${SSH_KEYS[1]}`] }), "100"], /authorizedKeys item 0 does not start with a key type .*; options such as from= or command= are not allowed/],
        ];
        for (const [what, make, message] of refused) {
            // The agent discards the staging directory of a refused state (end-to-end test below).
            it(`refuses ${what} (exit 2)`, () => {
                const [params, doc, instanceId] = make();
                const out = render(params, doc, instanceId);
                assert.strictEqual(out.status, 2, out.stderr);
                assert.match(out.stderr, message);
            });
        }
    });

    describe("scripts pass shellcheck", () => {
        const scripts: [string, () => string][] = [
            ["the hub's agent", () => renderAgentScript(hubParams())],
            ["a NATS node's agent", () => renderAgentScript(natsParams())],
            ["the hub's first boot", () => renderNodeBootstrapScript({ node: "wg-cache", publishPutUrl: "https://h/b/k?X-Amz-Signature=ab", listenPort: 51820, address: "10.44.0.1/24", subnet: SUBNET, interfaceSection: hubInterfaceSection({ address: "10.44.0.1/24", listenPort: 51820, subnet: SUBNET }) })],
            ["a NATS node's first boot, with certificate requests", () => renderNodeBootstrapScript({
                node: "meshstack-dev-1", publishPutUrl: "https://h/b/k?X-Amz-Signature=ab", listenPort: 51820, address: "10.44.0.11/24", subnet: SUBNET,
                interfaceSection: wgInterfaceSection({ address: "10.44.0.11/24", listenPort: 51820 }),
                certificateRequests: [{ name: "route", keyPath: "/etc/nats/tls/route.key", owner: "nats:nats", requestConfig: "[req]\nprompt = no\n" }],
            })],
        ];
        for (const [what, script] of scripts) {
            it(what, async () => {
                const file = path.join(dir, `${what.replace(/\W+/g, "-")}.sh`);
                fs.writeFileSync(file, script());
                const { stdout } = await run(toolPath("shellcheck"), [file]);
                assert.strictEqual(stdout, "");
            });
        }
    });

    it("passes systemd-analyze verify: the service and the timer that starts it (ExecStart pointed at a real file)", async () => {
        const unitDir = fs.mkdtempSync(path.join(dir, "units-"));
        const script = path.join(unitDir, "meshstack-agent");
        fs.writeFileSync(script, renderAgentScript(hubParams()), { mode: 0o700 });
        const unit = renderAgentUnit();
        assert.ok(unit.includes(`ExecStart=${AGENT_SCRIPT_PATH}\n`));
        fs.writeFileSync(path.join(unitDir, AGENT_UNIT_NAME), unit.replace(AGENT_SCRIPT_PATH, script));
        fs.writeFileSync(path.join(unitDir, AGENT_TIMER_NAME), renderAgentTimer());
        const { stdout, stderr } = await run("systemd-analyze", ["verify", path.join(unitDir, AGENT_UNIT_NAME), path.join(unitDir, AGENT_TIMER_NAME)]);
        assert.strictEqual((stdout + stderr).trim(), "");
        assert.match(renderAgentTimer(), /^OnUnitActiveSec=10s$/m);
    });

    it("gives a run room to move nats-server and back (download, lame-duck stop, health wait, twice), and the deploy's wait room for that run after the one in progress", () => {
        const move = NATS_STOP_TIMEOUT_SECONDS + NATS_SERVER_MOVE_LIMITS.healthySeconds;
        assert.match(renderAgentUnit(), new RegExp(`^TimeoutStartSec=${AGENT_RUN_TIMEOUT_SECONDS}$`, "m"));
        assert.ok(AGENT_RUN_TIMEOUT_SECONDS > NATS_SERVER_MOVE_LIMITS.downloadSeconds + 2 * move, `${AGENT_RUN_TIMEOUT_SECONDS}s`);
        assert.ok(NATS_SERVER_MOVE_REPORT_DEADLINE_SECONDS > AGENT_RUN_TIMEOUT_SECONDS + AGENT_INTERVAL_SECONDS, `${NATS_SERVER_MOVE_REPORT_DEADLINE_SECONDS}s`);
    });

    describe("script end to end against MinIO (signed GET by curl --aws-sigv4, services left alone)", () => {
        const BUCKET = "agent-runtime";
        let minio: MinioServer;
        before(async () => {
            minio = await MinioServer.start();
            await minio.createBucket(BUCKET);
        });
        after(async () => minio?.stop());

        /** A hub node under a fresh root with the agent's files as its cloud-config writes them. */
        function hubNode(key: string, secretAccessKey = minio.credentials.secretAccessKey) {
            const params = hubParams({ endpoint: minio.endpoint, region: minio.region, bucket: BUCKET, key });
            return agentNode(dir, params, { credentials: { ...minio.credentials, secretAccessKey }, instanceId: "100", routePassword: PASSWORD });
        }

        it("does nothing while there is no desired state (404), then applies it, then leaves an unchanged one alone", async () => {
            const node = hubNode("desired/test/hub-1.json");
            const first = node.run();
            assert.strictEqual(first.status, 0, first.stderr);
            assert.match(node.log(), /no desired state at agent-runtime\/desired\/test\/hub-1\.json yet/);
            assert.strictEqual(node.wgConf(), undefined);

            await minio.putObject(BUCKET, "desired/test/hub-1.json", JSON.stringify(hubState()));
            const second = node.run();
            assert.strictEqual(second.status, 0, second.stderr);
            assert.match(node.log(), /applied desired state [0-9a-f]{64}: 3 peer\(s\), 2 ssh key\(s\)\n/);
            assert.match(node.log(), /MESHSTACK_AGENT_SKIP_SERVICES=1: wg0 is not up, not starting it/);
            assert.ok(node.wgConf()!.endsWith(peerText(hubPeers)));
            assert.strictEqual(fs.statSync(path.join(node.root, WG_CONF_PATH)).mode & 0o777, 0o600);

            const before = node.log();
            const third = node.run();
            assert.strictEqual(third.status, 0, third.stderr);
            assert.strictEqual(node.log(), before, "an unchanged document costs one GET and logs nothing");
            assert.deepStrictEqual(fs.readdirSync(path.join(node.root, AGENT_STATE_DIR)).filter((f) => f.startsWith("stage.")), [], "no staging directory left behind");
        });

        it("applies a changed state in place and keeps the last good one when a new state is refused or for another instance", async () => {
            const key = "desired/test/hub-2.json";
            const node = hubNode(key);
            await minio.putObject(BUCKET, key, JSON.stringify(hubState()));
            assert.strictEqual(node.run().status, 0);
            const fewer = hubState({ wireguard: { peers: hubPeers.slice(0, 2) } });
            await minio.putObject(BUCKET, key, JSON.stringify(fewer));
            assert.strictEqual(node.run().status, 0);
            assert.ok(node.wgConf()!.endsWith(peerText(hubPeers.slice(0, 2))));
            const good = node.wgConf();

            await minio.putObject(BUCKET, key, JSON.stringify(hubState({ instanceId: "99" })));
            const waiting = node.run();
            assert.strictEqual(waiting.status, 0, waiting.stderr);
            assert.match(node.log(), /is not for this instance yet; waiting/);
            assert.strictEqual(node.wgConf(), good);

            await minio.putObject(BUCKET, key, JSON.stringify(hubState({ wireguard: { peers: [{ ...hubPeers[0], allowedIps: ["0.0.0.0/0"] }] } })));
            const refused = node.run();
            assert.strictEqual(refused.status, 1);
            assert.match(node.log(), /allowed IPs 0\.0\.0\.0\/0 are outside 10\.44\.0\.0\/24/);
            assert.match(node.log(), /refused desired state [0-9a-f]{64} \(see above\); nothing applied/);
            assert.strictEqual(node.wgConf(), good);
        });

        /** A NATS node under a fresh root: its own TLS keys, CAs beside it, and certificates issued by them. */
        function natsNode(key: string) {
            // The nats user owns the routes file on a node; here the test's own user stands in.
            const user = os.userInfo().username;
            const params: AgentParams = { ...natsParams(), endpoint: minio.endpoint, region: minio.region, bucket: BUCKET, key, nats: { ...natsParams().nats!, layout: { ...NATS_NODE_LAYOUT, user, group: user } } };
            const node = agentNode(dir, params, { credentials: minio.credentials, instanceId: "201", routePassword: PASSWORD });
            const tls = path.join(node.root, NATS_NODE_LAYOUT.tlsDir);
            fs.mkdirSync(tls, { recursive: true });
            const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: tls, stdio: ["ignore", "pipe", "pipe"] }).toString();
            for (const name of ["route", "server", "stranger"]) openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`);
            for (const ca of ["route-ca", "client-ca"]) {
                openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${ca}.key`);
                openssl("req", "-x509", "-new", "-key", `${ca}.key`, "-subj", `/CN=${ca}`, "-days", "2", "-out", `${ca}.pem`);
            }
            const issue = (keyFile: string, ca: string) => {
                fs.writeFileSync(path.join(tls, "req.csr"), openssl("req", "-new", "-key", keyFile, "-subj", "/CN=meshstack-dev-1"));
                return openssl("x509", "-req", "-in", "req.csr", "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-days", "1");
            };
            const certificates = {
                "route-ca.crt": fs.readFileSync(path.join(tls, "route-ca.pem"), "utf8"), "route.crt": issue("route.key", "route-ca"),
                "client-ca.crt": fs.readFileSync(path.join(tls, "client-ca.pem"), "utf8"), "server.crt": issue("server.key", "client-ca"),
            };
            const installed = (file: string) => node.read(path.join(NATS_NODE_LAYOUT.tlsDir, file));
            const routes = () => node.read(path.join(NATS_NODE_LAYOUT.configDir, "cluster-routes.conf"));
            return { ...node, certificates, installed, routes, issue };
        }

        it("installs a NATS node's certificates and routes when each certificate is for the node's own key and chains to its CA", async () => {
            const key = "desired/test/nats-1.json";
            const node = natsNode(key);
            await minio.putObject(BUCKET, key, JSON.stringify(natsState({ certificates: node.certificates })));
            const result = node.run();
            assert.strictEqual(result.status, 0, result.stderr);
            for (const [file, pem] of Object.entries(node.certificates)) assert.strictEqual(node.installed(file), pem, file);
            assert.strictEqual(node.routes(), renderNatsRoutes({ routes: NATS_ROUTES, password: PASSWORD }));
            assert.strictEqual(fs.statSync(path.join(node.root, NATS_NODE_LAYOUT.configDir, "cluster-routes.conf")).mode & 0o777, 0o600);
            assert.match(node.log(), /not touching nats-server \(changed=1\)/);
            assert.match(node.log(), /applied desired state [0-9a-f]{64}: 2 peer\(s\), 2 route\(s\), 4 certificate\(s\), 2 ssh key\(s\)\n/);
        });

        const wrongCertificates: [string, (node: ReturnType<typeof natsNode>) => Record<string, string>, RegExp][] = [
            ["a certificate for another key", (node) => ({ ...node.certificates, "route.crt": node.issue("stranger.key", "route-ca") }), /refused: route\.crt is not for this node's key route\.key/],
            ["a certificate from the other CA", (node) => ({ ...node.certificates, "server.crt": node.issue("server.key", "route-ca") }), /refused: server\.crt does not chain to client-ca\.crt/],
        ];
        for (const [what, certificates, message] of wrongCertificates) {
            it(`installs nothing of a NATS state with ${what}`, async () => {
                const key = `desired/test/nats-${what.replace(/\W+/g, "-")}.json`;
                const node = natsNode(key);
                await minio.putObject(BUCKET, key, JSON.stringify(natsState({ certificates: certificates(node) })));
                const result = node.run();
                assert.notStrictEqual(result.status, 0);
                assert.match(node.log(), message);
                assert.deepStrictEqual([node.installed("route.crt"), node.installed("server.crt"), node.routes()], [undefined, undefined, undefined]);
                assert.doesNotMatch(node.log(), /applied desired state/);
            });
        }

        describe("root's authorized_keys, which the agent owns", () => {
            const keysFile = (node: ReturnType<typeof hubNode>) => path.join(node.root, ROOT_AUTHORIZED_KEYS_PATH);
            const mode = (file: string) => fs.statSync(file).mode & 0o777;
            const applied = async (key: string, node: ReturnType<typeof hubNode>, state: unknown) => {
                await minio.putObject(BUCKET, key, JSON.stringify(state));
                const result = node.run();
                assert.strictEqual(result.status, 0, result.stderr);
            };

            it("installs the desired keys one per line (.ssh 0700, the file 0600, root's), logs the count, and leaves an unchanged list alone", async () => {
                const key = "desired/test/hub-keys-1.json";
                const node = hubNode(key);
                await applied(key, node, hubState());
                assert.strictEqual(node.read(ROOT_AUTHORIZED_KEYS_PATH), SSH_KEYS.map((k) => `${k}\n`).join(""));
                const file = keysFile(node);
                assert.deepStrictEqual([mode(path.dirname(file)), mode(file), fs.statSync(file).uid], [0o700, 0o600, 0]);
                assert.match(node.log(), /root's authorized_keys replaced: 2 key\(s\)\n/);

                // Another peer set, the same keys: the file is not written again.
                const inode = fs.statSync(file).ino;
                await applied(key, node, hubState({ wireguard: { peers: hubPeers.slice(0, 1) } }));
                assert.strictEqual(fs.statSync(file).ino, inode, "an unchanged list rewrote the file");
                assert.strictEqual((node.log().match(/authorized_keys replaced/g) ?? []).length, 1);
                assert.match(node.log(), /applied desired state [0-9a-f]{64}: 1 peer\(s\), 2 ssh key\(s\)\n$/);
            });

            it("replaces the file in one rename when a key is added, replaced or removed", async () => {
                const key = "desired/test/hub-keys-2.json";
                const node = hubNode(key);
                for (const keys of [[SSH_KEYS[0]], [SSH_KEYS[0], SSH_KEYS[1]], [SSH_KEYS[1]]]) {
                    await applied(key, node, hubState({ authorizedKeys: keys }));
                    assert.strictEqual(node.read(ROOT_AUTHORIZED_KEYS_PATH), keys.map((k) => `${k}\n`).join(""));
                    assert.match(node.log(), new RegExp(`root's authorized_keys replaced: ${keys.length} key\\(s\\)\\n`));
                }
                assert.deepStrictEqual(fs.readdirSync(path.dirname(keysFile(node))), ["authorized_keys"], "no temporary file left behind");
            });

            it("empties the file for an empty list, and says so in the log", async () => {
                const key = "desired/test/hub-keys-3.json";
                const node = hubNode(key);
                await applied(key, node, hubState());
                await applied(key, node, hubState({ authorizedKeys: [] }));
                assert.strictEqual(node.read(ROOT_AUTHORIZED_KEYS_PATH), "");
                assert.match(node.log(), /root's authorized_keys EMPTIED: the desired state lists no SSH key \(meshstack:sshAuthorizedKeys is empty\); no key logs in to this node until one is added\n/);
                assert.match(node.log(), /applied desired state [0-9a-f]{64}: 3 peer\(s\), 0 ssh key\(s\)\n$/);
            });

            it("leaves the file alone for a state without the list (written by a deploy from before the agent owned it)", async () => {
                const key = "desired/test/hub-keys-4.json";
                const node = hubNode(key);
                const byHand = `${SSH_KEYS[1]} added-by-hand\n`;
                fs.mkdirSync(path.dirname(keysFile(node)), { recursive: true });
                fs.writeFileSync(keysFile(node), byHand, { mode: 0o600 });
                const { authorizedKeys: _, ...before } = hubState();
                await applied(key, node, before);
                assert.strictEqual(node.read(ROOT_AUTHORIZED_KEYS_PATH), byHand);
                assert.doesNotMatch(node.log(), /authorized_keys (replaced|EMPTIED)/);
                assert.match(node.log(), /applied desired state [0-9a-f]{64}: 3 peer\(s\), authorized_keys left alone \(no authorizedKeys in the desired state\)\n$/);
            });

            it("keeps the installed keys when a state is refused, whatever else it lists", async () => {
                const key = "desired/test/hub-keys-5.json";
                const node = hubNode(key);
                await applied(key, node, hubState());
                await minio.putObject(BUCKET, key, JSON.stringify(hubState({ authorizedKeys: [SSH_KEYS[1], `${SSH_KEYS[0]}\nssh-ed25519 AAAA`] })));
                assert.strictEqual(node.run().status, 1);
                assert.match(node.log(), /authorizedKeys item 1 holds a line break/);
                assert.strictEqual(node.read(ROOT_AUTHORIZED_KEYS_PATH), SSH_KEYS.map((k) => `${k}\n`).join(""));
            });
        });

        describe("the agents' key report", () => {
            const reportKey = "reports/test/wg-cache/agent-key.json";
            const reportUrl = () => presignObjectUrl(minio.location(BUCKET, reportKey), minio.credentials, "PUT", 600, new Date());
            // The key in use offered again: nothing to switch, the report alone.
            const offered = (url: string) => hubState({ agentKey: { id: agentKeyId(minio.credentials.accessKeyId), sealed: sealAgentKey(minio.credentials, peerKeys[0]), reportUrl: url } });

            it("is retried on every run until the store takes it, then sent no more; the URL is never logged", async () => {
                const key = "desired/test/hub-report.json";
                const node = hubNode(key);
                const good = await reportUrl();
                const forged = good.replace(/X-Amz-Signature=[0-9a-f]+/, `X-Amz-Signature=${"0".repeat(64)}`);
                await minio.putObject(BUCKET, key, JSON.stringify(offered(forged)));
                const id = agentKeyId(minio.credentials.accessKeyId);
                for (const attempt of [1, 2]) {
                    const failed = node.run();
                    assert.strictEqual(failed.status, 1, `attempt ${attempt}: ${failed.stderr}`);
                    assert.match(node.log(), new RegExp(`reporting agents' key ${id} failed: HTTP 403 .*SignatureDoesNotMatch.*\\n$`));
                }
                assert.match(node.log(), new RegExp(`applied desired state [0-9a-f]{64}: 3 peer\\(s\\), 2 ssh key\\(s\\), agents' key ${id} \\(in use\\)\\n`));
                assert.strictEqual((node.log().match(/applied desired state/g) ?? []).length, 1, "the second attempt re-applied an unchanged state");
                assert.strictEqual(await minio.getObject(BUCKET, reportKey), undefined);

                await minio.putObject(BUCKET, key, JSON.stringify(offered(good)));
                const sent = node.run();
                assert.strictEqual(sent.status, 0, sent.stderr);
                assert.match(node.log(), new RegExp(`reported agents' key ${id}\\n$`));
                assert.deepStrictEqual(JSON.parse(String(await minio.getObject(BUCKET, reportKey))), { version: 1, node: "wg-cache", instanceId: "100", agentKeyId: id });
                const before = node.log();
                assert.strictEqual(node.run().status, 0);
                assert.strictEqual(node.log(), before, "a report already sent was sent again");
                for (const url of [good, forged]) assert.ok(!(node.log() + sent.stderr).includes(url.split("X-Amz-Signature=")[1]), "a report URL's signature is in the log");
                assert.strictEqual(node.read(AGENT_CREDENTIALS_PATH), renderAgentCredentials(minio.credentials.accessKeyId, minio.credentials.secretAccessKey), "the key in use was rewritten");
            });
        });

        it("reports a refused signature with the status the store gave and applies nothing", () => {
            const node = hubNode("desired/test/hub-3.json", "wrong-secret-000000000000");
            const result = node.run();
            assert.strictEqual(result.status, 1);
            assert.match(node.log(), /GET agent-runtime\/desired\/test\/hub-3\.json: HTTP 403 .*SignatureDoesNotMatch/);
            assert.strictEqual(node.wgConf(), undefined);
        });
    });
});
