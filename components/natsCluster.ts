import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import { natsNodeImage, natsNodeName } from "../lib/natsRollout";
import { NatsImageRollout } from "../providers/natsImageRollout";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { MeshNode } from "./meshNode";
import { ObjectStore } from "./objectStore";
import { agentFiles, AgentNats } from "../cloudinit/agent";
import {
    JetStreamLimits, NATS_DEFAULT_JETSTREAM_LIMITS, NATS_NODE_LAYOUT, NATS_ROUTE_PASSWORD_PATH, NATS_ROUTE_USER, NATS_TLS_FILES, natsRouteAddresses, natsTlsPath,
    renderNatsCloudConfig, renderNatsClusterSecrets, renderNatsConf, renderNatsInstallScript, renderNatsUnit,
} from "../cloudinit/nats";
import {
    CertProfile, NATS_KEY, NATS_LEAF_EARLY_RENEWAL_HOURS, natsClientCaProfile, natsClientCertProfile, natsRouteCaProfile, natsRouteCertProfile, natsServerCertProfile,
    opensslRequestConfig,
} from "../cloudinit/natsCerts";
import { NODE_BOOTSTRAP_LOG_PATH, PUBLISH_URL_PLACEHOLDER, renderNodeBootstrapScript, wgInterfaceSection } from "../cloudinit/nodeBootstrap";
import { WG_QUICK_UNIT } from "../cloudinit/wgMesh";
import { MeshMember } from "../lib/meshPeers";
import { desiredStateKey, rejoinPendingKey } from "../lib/runtimeChannel";
import { MeshTopology, NATS_DEFAULT_PORTS, NATS_WG_LISTEN_PORT, NatsNode } from "../lib/topology";
import { BootstrapConfig } from "../lib/config";
import { MAX_NATS_NODES } from "../lib/limits";
import { selectPublicIpv4 } from "../lib/endpoint";
import { linodeTags } from "../lib/environments";
import { requestedIdentity } from "../lib/certRequest";
import { cidrsByFamily } from "../lib/ip";
import { firewallLabel, NamingContext } from "../lib/naming";
import { NatsServerRelease } from "../lib/natsRelease";
import { JetStreamKv } from "../providers/jetstreamKv";
import { NatsRejoin } from "../providers/natsRejoin";

export interface NatsControlPlaneKvArgs {
    /** Bucket name (letters, digits, - and _). */
    bucket: string;
    /** Replicas: start at 1, raise to 3 in place once every node is up (R3 before every node has joined cannot place its replicas). At most nodeCount. */
    replicas: number;
    /** Revisions kept per key (default 1). */
    history?: number;
    /** Seconds a value lives; 0 or unset keeps values forever. */
    ttlSeconds?: number;
    /** How long `pulumi up` waits for the nodes to boot and the bucket to reach its replicas (default 900). */
    timeoutSeconds?: number;
}

/**
 * A NATS node as the runtime channel needs it: its mesh identity, its
 * certificates, its routes. Separate outputs, so a renewed certificate
 * (unknown until signed) leaves every other member's peer set known and
 * unchanged in a preview.
 */
export interface NatsRuntimeMember {
    member: pulumi.Output<MeshMember>;
    /** PEM by file name under the node's TLS directory (the CAs and the node's own certificates). */
    certificates: pulumi.Output<Record<string, string>>;
    /** host:port of every other server's route listener. */
    routes: string[];
}

export interface NatsClusterArgs {
    /** Project and stack, for physical names. */
    naming: NamingContext;
    /** Linode region. */
    region: string;
    /** Linode type of each node. */
    instanceType: string;
    /** Linode image of each node (Debian-family: the install script uses dpkg and runuser). */
    image: string;
    /**
     * Images by node index instead of `image` (meshstack:natsNodeImages). An
     * `up` that would change more than one existing node's image is refused
     * (lib/natsRollout.ts); this is how an image change is rolled.
     */
    nodeImages?: Record<number, string>;
    /** Sources allowed to reach the client port. Empty: the client port is closed to the internet. */
    clientCidrs: string[];
    /**
     * The mesh as planned once (lib/topology.ts): the cluster name, the
     * WireGuard subnet the routes live in, and the service name every
     * data-plane certificate carries.
     */
    topology: Pick<MeshTopology, "clusterName" | "subnet" | "natsServiceName">;
    /**
     * One node per server (an odd number, so RAFT keeps a majority after
     * losing a minority), as planned: hostname, DNS name, WireGuard address.
     */
    nodes: NatsNode[];
    /** How long `pulumi up` waits for each node's public material (meshstack:wgPubkeyPollTimeoutSeconds). */
    publishTimeoutSeconds: number;
    /**
     * DNS domain managed in Linode DNS. When set, each node's certificate
     * names `<hostname>.<domain>`, and A records for the nodes and for the
     * round-robin service name `<clusterName>.<domain>` are published once
     * the instances (and their public IPs) exist.
     */
    dnsDomain?: string;
    /** SSH public keys for root (break-glass). */
    authorizedKeys: string[];
    /** Sources allowed to reach tcp/22. Empty keeps it closed. */
    breakGlassSshCidrs?: string[];
    /** Where user-data too large for Linode Metadata is stored (passed to MeshNode). */
    objectStore: ObjectStore;
    /** Bootstrap delivery limits (passed to MeshNode). */
    bootstrap: BootstrapConfig;
    /**
     * An existing client CA (`meshstack:natsClientCaCertPem`/`natsClientCaKeyPem`),
     * so clients that already trust it keep working. Generated when unset.
     */
    clientCa?: { certPem: pulumi.Input<string>; keyPem: pulumi.Input<string> };
    /** Linode tags of the nodes and the firewall (environment, stack, PR). */
    tags?: string[];
    /** Protect what holds the cluster's data (every node and the KV bucket): replacing one then needs `pulumi state unprotect`. */
    protect?: boolean;
    /** JetStream memory and file store limits per node. */
    jetstream?: JetStreamLimits;
    /**
     * Opt-in: a control-plane KV bucket created by the deploy itself over the
     * client port. Only works when the machine running `pulumi up` is inside
     * clientCidrs; otherwise leave it unset and create buckets from inside.
     */
    controlPlaneKv?: NatsControlPlaneKvArgs;
    /**
     * Opt-in, with the same reach as controlPlaneKv: seconds `pulumi up`
     * waits after creating or replacing a node until it serves JetStream and
     * every stream replica on it is current (meshstack:natsRejoinTimeoutSeconds).
     * The `up` that rolls one node's image then ends when the next may go.
     * 0 or unset: no wait.
     */
    rejoinTimeoutSeconds?: number;
    /** Where the nodes download nats-server and its checksums (a private mirror); the release site by default. */
    serverRelease?: NatsServerRelease;
}

/**
 * Inbound rules: WireGuard from anywhere (the nodes dial each other
 * directly, and WireGuard answers no packet without a peer's key), the
 * client port from the configured sources, the route port from the
 * WireGuard subnet only, SSH for break-glass; everything else (monitoring
 * included) is dropped by the policy.
 */
export function natsFirewallInbounds(input: { clientCidrs: string[]; wgSubnet: string; sshCidrs: string[] }): linode.types.input.FirewallInbound[] {
    const rule = (label: string, port: number, cidrs: string[]) => ({ label, action: "ACCEPT", protocol: "TCP", ports: String(port), ...cidrsByFamily(cidrs) });
    return [
        { label: "wireguard", action: "ACCEPT", protocol: "UDP", ports: String(NATS_WG_LISTEN_PORT), ipv4s: ["0.0.0.0/0"], ipv6s: ["::/0"] },
        ...(input.clientCidrs.length ? [rule("nats-client", NATS_DEFAULT_PORTS.client, input.clientCidrs)] : []),
        rule("nats-route-wg", NATS_DEFAULT_PORTS.route, [input.wgSubnet]),
        ...(input.sshCidrs.length ? [rule("ssh-break-glass", 22, input.sshCidrs)] : []),
    ];
}

interface Issued {
    certPem: pulumi.Output<string>;
    keyPem: pulumi.Output<string>;
}

/**
 * A NATS JetStream cluster of nodeCount Linode instances: route CA and
 * per-node route certificates (mutual TLS between servers only), data-plane
 * certificates from the client CA, a random route password kept in 0600
 * files, nats-server pinned and checksum-verified, a hardened systemd unit,
 * and a firewall that admits routes only from the WireGuard subnet.
 *
 * Every private key is born on its node: at first boot a node makes its
 * WireGuard key and its TLS keys, and publishes its WireGuard public key
 * and two certificate requests. The deploy signs the requests with the CAs
 * it holds and hands the certificates, the peers and the routes to the
 * node's agent through the runtime channel (MeshRuntime), which starts
 * nats-server with them and reloads it when they change. So the user-data
 * holds only what never changes for this node (its name, its address, the
 * route password, the agent's read-only key): scaling, renewing
 * certificates, replacing the hub or another node changes no node's
 * user-data, and replaces nothing.
 *
 * A replaced node (its own image or SSH keys changed) is deleted before its
 * replacement is created: the replacement keeps the server_name and the
 * WireGuard address, and two servers with one name must never run at once.
 * It rejoins under the same name, and JetStream catches it up.
 *
 * Certificates name the node's hostname, DNS name, WireGuard address and
 * the cluster's service name. Clients reach a node by DNS name, or dial the
 * public IP and verify the service name (natsServiceName).
 */
export class NatsCluster extends pulumi.ComponentResource {
    public readonly nodes: MeshNode[];
    public readonly hostnames: string[];
    public readonly wgAddresses: string[];
    /** Name every data-plane certificate carries; the TLS server name for clients dialling IPs. */
    public readonly serviceName: string;
    public readonly publicIpv4s: pulumi.Output<string[]>;
    /** tls://<public IP>:4222 per node. */
    public readonly clientUrls: pulumi.Output<string[]>;
    public readonly firewallId: pulumi.Output<number>;
    public readonly routeCaCertPem: pulumi.Output<string>;
    /** What clients trust, and what signs their certificates. */
    public readonly clientCaCertPem: pulumi.Output<string>;
    /** Secret: lets other components issue client certificates. */
    public readonly clientCaKeyPem: pulumi.Output<string>;
    /** The opt-in control-plane bucket. */
    public readonly controlPlaneKv?: JetStreamKv;
    /** The opt-in rejoin waits, one per node. */
    public readonly rejoins: NatsRejoin[];
    /** What MeshRuntime writes into each node's desired state. */
    public readonly runtimeMembers: NatsRuntimeMember[];

    constructor(name: string, args: NatsClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("meshstack:index:NatsCluster", name, {}, opts);
        const nodeCount = args.nodes.length;
        if (nodeCount < 1 || nodeCount > MAX_NATS_NODES || nodeCount % 2 === 0) {
            throw new pulumi.ResourceError(`meshstack:natsNodeCount ${nodeCount} is not allowed; allowed: an odd integer from 1 to ${MAX_NATS_NODES}`, this);
        }
        if (args.controlPlaneKv && args.controlPlaneKv.replicas > nodeCount) {
            throw new pulumi.ResourceError(`meshstack:natsKvReplicas ${args.controlPlaneKv.replicas} exceeds meshstack:natsNodeCount ${nodeCount}; allowed: 1 to ${nodeCount}`, this);
        }
        const clusterName = args.topology.clusterName;
        const subnet = args.topology.subnet;
        const topology = args.nodes;
        this.wgAddresses = topology.map((n) => n.wgAddress);
        this.hostnames = topology.map((n) => n.hostname);
        this.serviceName = args.topology.natsServiceName;

        const password = new random.RandomPassword(`${name}-cluster-password`, {
            // Letters and digits: it goes into route URLs and nats.conf unescaped.
            length: 40, special: false,
        }, { parent: this });

        const routeCa = this.selfSignedCa(`${name}-route-ca`, natsRouteCaProfile(clusterName));
        const clientCa: Issued = args.clientCa
            ? { certPem: pulumi.output(args.clientCa.certPem), keyPem: pulumi.secret(args.clientCa.keyPem) }
            : this.selfSignedCa(`${name}-client-ca`, natsClientCaProfile(clusterName));
        this.routeCaCertPem = routeCa.certPem;
        this.clientCaCertPem = clientCa.certPem;
        this.clientCaKeyPem = pulumi.secret(clientCa.keyPem);

        const firewall = new linode.Firewall(`${name}-firewall`, {
            label: firewallLabel(args.naming, `${name}-fw`),
            inboundPolicy: "DROP",
            outboundPolicy: "ACCEPT",
            inbounds: natsFirewallInbounds({ clientCidrs: args.clientCidrs, wgSubnet: subnet, sshCidrs: args.breakGlassSshCidrs ?? [] }),
            tags: linodeTags(["meshstack", args.naming.stack, ...(args.tags ?? [])]),
        }, { parent: this });
        this.firewallId = firewall.id.apply(Number);

        const imageOf = (index: number) => natsNodeImage(index, args.image, args.nodeImages ?? {});
        const runtime = args.objectStore.runtime;
        const rejoinMarkKey = (node: NatsNode) => rejoinPendingKey(args.naming.stack, node.hostname);
        // Every instance waits for it: no node is replaced unless its check() let this up's image changes
        // through, and (with the rejoin waits on) its update found no earlier replacement unconfirmed.
        const imageRollout = new NatsImageRollout(`${name}-image-rollout`, {
            images: Object.fromEntries(args.nodes.map((n) => [natsNodeName(n.index), imageOf(n.index)])),
            rejoinMarks: args.rejoinTimeoutSeconds
                ? pulumi.output({ ...runtime, keys: Object.fromEntries(args.nodes.map((n) => [natsNodeName(n.index), rejoinMarkKey(n)])) })
                : undefined,
        }, { parent: this });

        const layout = NATS_NODE_LAYOUT;
        const unit = renderNatsUnit({ layout, wants: [WG_QUICK_UNIT] });
        const installScript = renderNatsInstallScript({ layout, release: args.serverRelease });
        const prefix = subnet.split("/")[1];
        const tlsFile = NATS_TLS_FILES;
        const agentNats: AgentNats = {
            layout,
            certificates: [
                { file: tlsFile.routeCa },
                { file: tlsFile.routeCert, matchesKey: tlsFile.routeKey, issuer: tlsFile.routeCa },
                { file: tlsFile.clientCa },
                { file: tlsFile.serverCert, matchesKey: tlsFile.serverKey, issuer: tlsFile.clientCa },
            ],
            routeUser: NATS_ROUTE_USER,
            routePasswordPath: NATS_ROUTE_PASSWORD_PATH,
        };
        const agentKey = args.objectStore.agentCredentials;
        const runtimeMembers: NatsRuntimeMember[] = [];
        this.nodes = topology.map((node) => {
            const address = `${node.wgAddress}/${prefix}`;
            // One profile per certificate: what the node asks for, what the deploy accepts, what it signs.
            const profiles = { route: natsRouteCertProfile(node), server: natsServerCertProfile(node, this.serviceName) };
            const interfaceSection = wgInterfaceSection({ address, listenPort: NATS_WG_LISTEN_PORT });
            const bootstrapScript = renderNodeBootstrapScript({
                node: node.hostname,
                publishPutUrl: PUBLISH_URL_PLACEHOLDER,
                listenPort: NATS_WG_LISTEN_PORT,
                address,
                subnet,
                interfaceSection,
                certificateRequests: [
                    { name: "route", keyPath: natsTlsPath(layout, "routeKey"), owner: `${layout.user}:${layout.group}`, requestConfig: opensslRequestConfig(profiles.route) },
                    { name: "server", keyPath: natsTlsPath(layout, "serverKey"), owner: `${layout.user}:${layout.group}`, requestConfig: opensslRequestConfig(profiles.server) },
                ],
            });
            const cloudConfig = pulumi
                .all([runtime.endpoint, runtime.region, runtime.bucket, agentKey.accessKeyId, agentKey.secretAccessKey, password.result])
                .apply(([endpoint, region, bucket, accessKeyId, secretAccessKey, clusterPassword]) =>
                    renderNatsCloudConfig({
                        node, layout, unit, installScript, bootstrapScript,
                        agent: agentFiles({
                            node: node.hostname, endpoint, region, bucket,
                            key: desiredStateKey(args.naming.stack, node.hostname),
                            wgAddress: address,
                            wgListenPort: NATS_WG_LISTEN_PORT,
                            interfaceSection,
                            nats: agentNats,
                        }, { accessKeyId, secretAccessKey }),
                        files: {
                            natsConf: renderNatsConf({ clusterName, node, layout, clientHost: "0.0.0.0", jetstream: args.jetstream ?? NATS_DEFAULT_JETSTREAM_LIMITS }),
                            clusterSecrets: renderNatsClusterSecrets({ password: clusterPassword }),
                            routePassword: clusterPassword,
                        },
                    }),
                );
            const meshNode = new MeshNode(`${name}-${node.index}`, {
                naming: args.naming,
                region: args.region,
                instanceType: args.instanceType,
                image: imageOf(node.index),
                replaceAfter: [imageRollout],
                cloudConfig: pulumi.secret(cloudConfig),
                publish: {
                    node: node.hostname,
                    runtime,
                    expectedRequests: { route: requestedIdentity(profiles.route), server: requestedIdentity(profiles.server) },
                    bootstrapLogPath: NODE_BOOTSTRAP_LOG_PATH,
                    timeoutSeconds: args.publishTimeoutSeconds,
                },
                deleteBeforeReplace: true,
                authorizedKeys: args.authorizedKeys,
                firewallId: this.firewallId,
                tags: ["nats", clusterName.toLowerCase(), ...(args.tags ?? [])],
                protect: args.protect,
                objectStore: args.objectStore,
                bootstrap: args.bootstrap,
            }, { parent: this });
            const published = meshNode.published;
            const route = this.signRequest(`${name}-${node.index}-route`, published.requests.apply((r) => r.route), profiles.route, routeCa);
            const server = this.signRequest(`${name}-${node.index}-server`, published.requests.apply((r) => r.server), profiles.server, clientCa);
            const endpoint = pulumi.all([meshNode.ipv4s, meshNode.instance.ipAddress]).apply(([ips, main]) => `${selectPublicIpv4(ips, main, "a NATS node's WireGuard endpoint")}:${NATS_WG_LISTEN_PORT}`);
            runtimeMembers.push({
                member: pulumi.all([published.publicKey, endpoint, meshNode.instance.id]).apply(([publicKey, wgEndpoint, instanceId]): MeshMember =>
                    ({ name: node.hostname, address: node.wgAddress, publicKey, endpoint: wgEndpoint, instanceId })),
                certificates: pulumi.all([routeCa.certPem, route, clientCa.certPem, server]).apply(([routeCaPem, routePem, clientCaPem, serverPem]): Record<string, string> =>
                    ({ [tlsFile.routeCa]: routeCaPem, [tlsFile.routeCert]: routePem, [tlsFile.clientCa]: clientCaPem, [tlsFile.serverCert]: serverPem })),
                routes: natsRouteAddresses(node, topology),
            });
            return meshNode;
        });
        this.runtimeMembers = runtimeMembers;
        // Per node, so what waits on one node's URL does not wait on (or, in a preview, see unknown for) every node's.
        const publicIpv4s = this.nodes.map((n) => n.ipv4s.apply((ips) => selectPublicIpv4(ips, undefined, "a NATS client address")));
        const clientUrls = publicIpv4s.map((ip) => ip.apply((address) => `tls://${address}:${NATS_DEFAULT_PORTS.client}`));
        this.publicIpv4s = pulumi.all(publicIpv4s);
        this.clientUrls = pulumi.all(clientUrls);

        if (args.dnsDomain) this.publishDns(name, args.dnsDomain, clusterName, topology);

        // The deploy's own client identity, for what it does over the client port.
        const deployer = args.controlPlaneKv || args.rejoinTimeoutSeconds
            ? this.leafCert(`${name}-deployer`, natsClientCertProfile(`${clusterName}-deployer`), clientCa)
            : undefined;
        this.rejoins = args.rejoinTimeoutSeconds && deployer
            ? this.nodes.map((meshNode, i) => new NatsRejoin(`${name}-${topology[i].index}-rejoin`, {
                node: topology[i].hostname,
                // A new instance id is what makes the wait run again: the node was replaced. Taken
                // through the key poll, so the deadline counts from the node's first boot, and not
                // through the whole node, whose bootstrap cleanup may still be deleting its object.
                instanceId: pulumi.all([meshNode.instance.id, meshNode.published.publicKey]).apply(([id]) => id),
                server: clientUrls[i],
                tlsServerName: this.serviceName,
                caPem: clientCa.certPem,
                certPem: deployer.certPem,
                keyPem: deployer.keyPem,
                timeoutSeconds: args.rejoinTimeoutSeconds!,
                ...runtime,
                key: rejoinMarkKey(topology[i]),
            }, { parent: this }))
            : [];

        if (args.controlPlaneKv && deployer) {
            // After the rejoin waits when they are on: a KV change made while a rebuilt node is still
            // catching up meets its streams offline (a fixed cleanup delay used to hide this ordering).
            this.controlPlaneKv = new JetStreamKv(`${name}-kv`, {
                servers: this.clientUrls,
                tlsServerName: this.serviceName,
                caPem: clientCa.certPem,
                certPem: deployer.certPem,
                keyPem: deployer.keyPem,
                bucket: args.controlPlaneKv.bucket,
                replicas: args.controlPlaneKv.replicas,
                history: args.controlPlaneKv.history,
                ttlSeconds: args.controlPlaneKv.ttlSeconds,
                timeoutSeconds: args.controlPlaneKv.timeoutSeconds ?? 900,
            }, { parent: this, dependsOn: [...this.nodes, ...this.rejoins], protect: args.protect });
        }

        this.registerOutputs({
            hostnames: this.hostnames,
            wgAddresses: this.wgAddresses,
            serviceName: this.serviceName,
            publicIpv4s: this.publicIpv4s,
            clientUrls: this.clientUrls,
            firewallId: this.firewallId,
            routeCaCertPem: this.routeCaCertPem,
            clientCaCertPem: this.clientCaCertPem,
            clientCaKeyPem: this.clientCaKeyPem,
        });
    }

    private privateKey(name: string): tls.PrivateKey {
        // @pulumi/tls marks every private key output secret itself.
        return new tls.PrivateKey(name, { algorithm: NATS_KEY.algorithm, ecdsaCurve: NATS_KEY.ecdsaCurve }, { parent: this });
    }

    private selfSignedCa(name: string, profile: CertProfile): Issued {
        const key = this.privateKey(`${name}-key`);
        const cert = new tls.SelfSignedCert(name, {
            privateKeyPem: key.privateKeyPem,
            subject: { commonName: profile.commonName, organization: profile.organization },
            isCaCertificate: true,
            validityPeriodHours: profile.validityHours,
            allowedUses: profile.uses,
            setSubjectKeyId: true,
        }, { parent: this });
        return { certPem: cert.certPem, keyPem: pulumi.secret(key.privateKeyPem) };
    }

    private leafCert(name: string, profile: CertProfile, issuer: Issued): Issued {
        const key = this.privateKey(`${name}-key`);
        const request = new tls.CertRequest(`${name}-csr`, {
            privateKeyPem: key.privateKeyPem,
            subject: { commonName: profile.commonName, organization: profile.organization },
            dnsNames: profile.dnsNames,
            ipAddresses: profile.ipAddresses,
        }, { parent: this });
        const cert = new tls.LocallySignedCert(name, {
            certRequestPem: request.certRequestPem,
            caCertPem: issuer.certPem,
            caPrivateKeyPem: issuer.keyPem,
            validityPeriodHours: profile.validityHours,
            earlyRenewalHours: NATS_LEAF_EARLY_RENEWAL_HOURS,
            allowedUses: profile.uses,
            setSubjectKeyId: true,
        }, { parent: this });
        return { certPem: cert.certPem, keyPem: pulumi.secret(key.privateKeyPem) };
    }

    /** A certificate for a request a node made: its key never leaves the node. Renewed early, reloaded by the agent. */
    private signRequest(name: string, requestPem: pulumi.Output<string>, profile: CertProfile, issuer: Issued): pulumi.Output<string> {
        return new tls.LocallySignedCert(name, {
            certRequestPem: requestPem,
            caCertPem: issuer.certPem,
            caPrivateKeyPem: issuer.keyPem,
            validityPeriodHours: profile.validityHours,
            earlyRenewalHours: NATS_LEAF_EARLY_RENEWAL_HOURS,
            allowedUses: profile.uses,
            setSubjectKeyId: true,
        }, { parent: this }).certPem;
    }

    /** A records for each node and the round-robin service name, made after the instances: no cycle with the certificates. */
    private publishDns(name: string, dnsDomain: string, clusterName: string, topology: NatsNode[]): void {
        const domainId = linode.getDomainOutput({ domain: dnsDomain }, { parent: this }).apply((d) => Number(d.id));
        topology.forEach((node, i) => {
            const ip = this.nodes[i].ipv4s.apply((ips) => selectPublicIpv4(ips, undefined, "a NATS DNS record"));
            new linode.DomainRecord(`${name}-${node.index}-dns`, { domainId, recordType: "A", name: node.hostname, target: ip, ttlSec: 300 }, { parent: this });
            new linode.DomainRecord(`${name}-${node.index}-service-dns`, { domainId, recordType: "A", name: clusterName.toLowerCase(), target: ip, ttlSec: 300 }, { parent: this });
        });
    }
}
