/**
 * A NATS cluster on loopback for tests and benches: real nats-server
 * processes (the pinned version, from scripts/setup.sh), configs rendered by
 * the same functions the nodes get, certificates minted by openssl from the
 * same profiles the component hands to @pulumi/tls. Every node binds
 * 127.0.0.1 with its own random ports and directory; the "WireGuard address"
 * of each node is 127.0.0.1.
 */
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    NATS_CLUSTER_ROUTES_FILE, NATS_CLUSTER_SECRETS_FILE, NATS_DEFAULT_JETSTREAM_LIMITS, NATS_SYSTEM_ACCOUNT_FILE, NATS_TLS_FILES, NatsLayout, natsConfPath,
    natsRouteAddresses, renderNatsClusterSecrets, renderNatsConf, renderNatsRoutes, renderNatsSystemAccount,
} from "../../cloudinit/nats";
import {
    CertProfile, natsClientCaProfile, natsClientCertProfile, natsRouteCaProfile, natsRouteCertProfile, natsServerCertProfile, opensslExtensions,
} from "../../cloudinit/natsCerts";
import { natsHostname, NatsNode, natsServiceName } from "../../lib/topology";
import { freePort, waitFor } from "./ports";
import { toolPath } from "./tools";

export interface Pem {
    certPem: string;
    keyPem: string;
    certFile: string;
    keyFile: string;
}

/** Mints certificates with openssl from a CertProfile, like @pulumi/tls does from the same profile. */
export class TestPki {
    private serial = 1;
    constructor(private readonly dir: string) {
        fs.mkdirSync(dir, { recursive: true });
    }

    private issue(name: string, profile: CertProfile, issuer?: Pem): Pem {
        const file = (ext: string) => path.join(this.dir, `${name}.${ext}`);
        const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "pipe", "pipe"] });
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file("key"));
        fs.chmodSync(file("key"), 0o600);
        openssl("req", "-new", "-key", file("key"), "-subj", `/O=${profile.organization}/CN=${profile.commonName}`, "-out", file("csr"));
        fs.writeFileSync(file("ext"), opensslExtensions(profile));
        const days = String(Math.ceil(profile.validityHours / 24));
        const signer = issuer ? ["-CA", issuer.certFile, "-CAkey", issuer.keyFile] : ["-signkey", file("key")];
        openssl("x509", "-req", "-in", file("csr"), ...signer, "-set_serial", String(this.serial++), "-days", days, "-extfile", file("ext"), "-out", file("crt"));
        return { certPem: fs.readFileSync(file("crt"), "utf8"), keyPem: fs.readFileSync(file("key"), "utf8"), certFile: file("crt"), keyFile: file("key") };
    }

    ca(name: string, profile: CertProfile): Pem {
        return this.issue(name, profile);
    }

    leaf(name: string, profile: CertProfile, issuer: Pem): Pem {
        return this.issue(name, profile, issuer);
    }
}

export interface NatsServerStatus {
    routes: { remoteName: string }[];
    numRoutes: number;
    metaLeader?: string;
    /** The meta group peers this server sees current and online (a leader's view; a follower's list is empty). */
    currentMetaPeers: string[];
}

interface NodeState {
    node: NatsNode;
    layout: NatsLayout;
    child?: ChildProcess;
    exited?: Promise<void>;
    log: string[];
}

export class LoopbackNatsCluster {
    public readonly clusterName = "meshtest";
    /** The system account user's password (NATS_SYSTEM_USER), as the nodes' system-account.conf holds it. */
    public readonly systemPassword = "meshstackSystemPassword0123456789";
    public readonly serviceName = natsServiceName("meshtest");
    public readonly routeCa: Pem;
    public readonly clientCa: Pem;
    /** A client identity signed by the client CA. */
    public readonly client: Pem;
    private readonly nodes: NodeState[];
    private readonly members: number;
    private readonly routeIdentities = new Map<number, Pem>();

    private constructor(public readonly root: string, public readonly pki: TestPki, nodes: NatsNode[], public readonly password: string) {
        this.members = nodes.length;
        this.routeCa = pki.ca("route-ca", natsRouteCaProfile(this.clusterName));
        this.clientCa = pki.ca("client-ca", natsClientCaProfile(this.clusterName));
        this.client = pki.leaf("client", natsClientCertProfile("meshstack-test-client"), this.clientCa);
        this.nodes = nodes.map((node) => ({ node, layout: this.layoutFor(node.index), log: [] }));
        for (const state of this.nodes) this.writeNode(state, this.nodes.map((s) => s.node), password);
    }

    /** Renders and writes configs and certificates for `size` nodes; starts nothing. */
    static async create(size = 3, password = "meshstackTestPassword0123456789"): Promise<LoopbackNatsCluster> {
        const root = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-nats-"));
        const nodes: NatsNode[] = [];
        for (let index = 0; index < size; index++) {
            nodes.push({
                index, hostname: natsHostname("meshtest", index), wgAddress: "127.0.0.1",
                ports: { client: await freePort(), route: await freePort(), monitor: await freePort() },
            });
        }
        return new LoopbackNatsCluster(root, new TestPki(path.join(root, "pki")), nodes, password);
    }

    private layoutFor(index: number): NatsLayout {
        const dir = path.join(this.root, `node-${index}`);
        return { configDir: dir, tlsDir: path.join(dir, "tls"), storeDir: path.join(dir, "jetstream"), binary: toolPath("nats-server"), user: os.userInfo().username, group: os.userInfo().username };
    }

    /** Writes one node's files as the cloud-config would: same names, same modes. */
    writeNode(state: { node: NatsNode; layout: NatsLayout }, peers: NatsNode[], password: string, routeIdentity?: Pem): void {
        const { node, layout } = state;
        fs.mkdirSync(layout.tlsDir, { recursive: true });
        const route = routeIdentity ?? this.pki.leaf(`${node.hostname}-route`, natsRouteCertProfile(node), this.routeCa);
        this.routeIdentities.set(node.index, route);
        const server = this.pki.leaf(`${node.hostname}-server`, natsServerCertProfile(node, this.serviceName), this.clientCa);
        const write = (file: string, content: string, mode: number) => fs.writeFileSync(file, content, { mode });
        write(path.join(layout.tlsDir, NATS_TLS_FILES.routeCa), this.routeCa.certPem, 0o644);
        write(path.join(layout.tlsDir, NATS_TLS_FILES.routeCert), route.certPem, 0o644);
        write(path.join(layout.tlsDir, NATS_TLS_FILES.routeKey), route.keyPem, 0o600);
        write(path.join(layout.tlsDir, NATS_TLS_FILES.clientCa), this.clientCa.certPem, 0o644);
        write(path.join(layout.tlsDir, NATS_TLS_FILES.serverCert), server.certPem, 0o644);
        write(path.join(layout.tlsDir, NATS_TLS_FILES.serverKey), server.keyPem, 0o600);
        write(path.join(layout.configDir, NATS_CLUSTER_SECRETS_FILE), renderNatsClusterSecrets({ password }), 0o600);
        write(path.join(layout.configDir, NATS_SYSTEM_ACCOUNT_FILE), renderNatsSystemAccount({ password: this.systemPassword }), 0o600);
        write(path.join(layout.configDir, NATS_CLUSTER_ROUTES_FILE), renderNatsRoutes({ routes: natsRouteAddresses(node, peers), password }), 0o600);
        write(natsConfPath(layout), renderNatsConf({ clusterName: this.clusterName, node, layout, clientHost: "127.0.0.1", jetstream: NATS_DEFAULT_JETSTREAM_LIMITS }), 0o640);
    }

    /**
     * An extra server outside the cluster, configured to join it: with a
     * wrong password, or presenting another certificate on the routes.
     */
    async outsider(options: { password?: string; routeIdentity?: Pem }): Promise<number> {
        const index = this.nodes.length;
        const node: NatsNode = {
            index, hostname: natsHostname(this.clusterName, index), wgAddress: "127.0.0.1",
            ports: { client: await freePort(), route: await freePort(), monitor: await freePort() },
        };
        const state: NodeState = { node, layout: this.layoutFor(index), log: [] };
        this.writeNode(state, [...this.nodes.map((s) => s.node), node], options.password ?? this.password, options.routeIdentity);
        this.nodes.push(state);
        return index;
    }

    /** The cluster proper; outsiders come after it. */
    get memberIndexes(): number[] {
        return Array.from({ length: this.members }, (_, i) => i);
    }

    node(index: number): NatsNode {
        return this.nodes[index].node;
    }

    /** The route certificate and key node `index` presents. */
    routeIdentity(index: number): Pem {
        return this.routeIdentities.get(index)!;
    }

    layout(index: number): NatsLayout {
        return this.nodes[index].layout;
    }

    logs(index: number): string {
        return this.nodes[index].log.join("");
    }

    clientUrl(index: number): string {
        return `tls://127.0.0.1:${this.nodes[index].node.ports.client}`;
    }

    clientUrls(indexes = this.memberIndexes): string[] {
        return indexes.map((i) => this.clientUrl(i));
    }

    isRunning(index: number): boolean {
        const child = this.nodes[index].child;
        return !!child && child.exitCode === null && child.signalCode === null;
    }

    start(index: number): void {
        const state = this.nodes[index];
        if (this.isRunning(index)) return;
        const child = spawn(state.layout.binary, ["-c", natsConfPath(state.layout)], { stdio: ["ignore", "pipe", "pipe"] });
        state.child = child;
        state.exited = new Promise((resolve) => child.once("exit", () => resolve()));
        child.stdout!.on("data", (d) => state.log.push(String(d)));
        child.stderr!.on("data", (d) => state.log.push(String(d)));
    }

    /** Stops a server: SIGTERM a graceful stop, SIGUSR2 what `systemctl stop` sends (lame duck), SIGKILL a crash. */
    async stop(index: number, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
        const state = this.nodes[index];
        if (!this.isRunning(index)) return;
        state.child!.kill(signal);
        const timer = setTimeout(() => state.child!.kill("SIGKILL"), 30_000);
        await state.exited;
        clearTimeout(timer);
    }

    /** Gives node `index` JetStream server tags (placement), before it starts. */
    tag(index: number, tags: string[]): void {
        fs.appendFileSync(natsConfPath(this.nodes[index].layout), `server_tags: [${tags.map((t) => JSON.stringify(t)).join(", ")}]\n`);
    }

    /** Routes node `index` to `peers` alone, as its agent does from a new desired state, and reloads it (SIGHUP). */
    routeTo(index: number, peers: number[]): void {
        const state = this.nodes[index];
        const routes = renderNatsRoutes({ routes: natsRouteAddresses(state.node, peers.map((i) => this.nodes[i].node)), password: this.password });
        fs.writeFileSync(path.join(state.layout.configDir, NATS_CLUSTER_ROUTES_FILE), routes, { mode: 0o600 });
        state.child?.kill("SIGHUP");
    }

    async monitor(index: number, pathAndQuery: string): Promise<Response> {
        return fetch(`http://127.0.0.1:${this.nodes[index].node.ports.monitor}${pathAndQuery}`, { signal: AbortSignal.timeout(2000) });
    }

    async status(index: number): Promise<NatsServerStatus> {
        const routez = (await (await this.monitor(index, "/routez")).json()) as { routes?: { remote_name: string }[]; num_routes: number };
        const jsz = (await (await this.monitor(index, "/jsz")).json()) as { meta_cluster?: { leader?: string; replicas?: { name: string; current?: boolean; offline?: boolean }[] } };
        return {
            routes: (routez.routes ?? []).map((r) => ({ remoteName: r.remote_name })),
            numRoutes: routez.num_routes,
            metaLeader: jsz.meta_cluster?.leader || undefined,
            currentMetaPeers: (jsz.meta_cluster?.replicas ?? []).filter((r) => r.current && !r.offline).map((r) => r.name),
        };
    }

    /**
     * True when each listed server routes to every other listed one, all agree on a meta leader, and
     * that leader sees the others current. Routes and a leader alone are not enough: a stream placed
     * on a server the leader still counts offline is refused ("no suitable peers", which CI met).
     */
    async formed(indexes: number[]): Promise<boolean> {
        const statuses = await Promise.all(indexes.map((i) => this.status(i)));
        const names = indexes.map((i) => this.nodes[i].node.hostname);
        const leader = statuses[names.indexOf(statuses[0].metaLeader ?? "")];
        return !!leader && statuses.every((s, k) => {
            const peers = new Set(s.routes.map((r) => r.remoteName));
            return names.every((n, j) => j === k || peers.has(n)) && s.metaLeader === statuses[0].metaLeader;
        }) && names.every((n) => n === statuses[0].metaLeader || leader.currentMetaPeers.includes(n));
    }

    async waitFormed(indexes: number[], timeoutMs = 30_000): Promise<void> {
        await waitFor(`servers ${indexes.join(",")} to form a cluster with a meta leader`, () => this.formed(indexes), timeoutMs, 50);
    }

    /** Starts the members and waits until they form a cluster. */
    async startAll(timeoutMs = 30_000): Promise<void> {
        this.memberIndexes.forEach((i) => this.start(i));
        await this.waitFormed(this.memberIndexes, timeoutMs);
    }

    async stopAll(): Promise<void> {
        await Promise.all(this.nodes.map((_, i) => this.stop(i, "SIGKILL")));
    }

    /** Stops every server and deletes the directory (stores, keys, configs). */
    async destroy(): Promise<void> {
        await this.stopAll();
        fs.rmSync(this.root, { recursive: true, force: true });
    }

    /** Wipes one node's JetStream store, for a clean start in benches. */
    wipeStore(index: number): void {
        fs.rmSync(this.nodes[index].layout.storeDir, { recursive: true, force: true });
    }
}
