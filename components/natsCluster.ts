import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { MeshNode } from "./meshNode";
import { ObjectStore } from "./objectStore";
import {
    JetStreamLimits, NATS_DEFAULT_JETSTREAM_LIMITS, NATS_NODE_LAYOUT, renderNatsCloudConfig, renderNatsClusterSecrets,
    renderNatsConf, renderNatsInstallScript, renderNatsUnit,
} from "../cloudinit/nats";
import {
    CertProfile, NATS_KEY, NATS_LEAF_EARLY_RENEWAL_HOURS, natsClientCaProfile, natsClientCertProfile, natsRouteCaProfile, natsRouteCertProfile, natsServerCertProfile,
} from "../cloudinit/natsCerts";
import { renderSpokeWgFiles, WG_QUICK_UNIT } from "../cloudinit/wgMesh";
import { MeshTopology, NATS_DEFAULT_PORTS, NatsNode } from "../lib/topology";
import { BootstrapConfig } from "../lib/config";
import { MAX_NATS_NODES } from "../lib/limits";
import { selectPublicIpv4 } from "../lib/endpoint";
import { linodeTags } from "../lib/environments";
import { cidrsByFamily } from "../lib/ip";
import { linodeLabel, NamingContext } from "../lib/naming";
import { NatsServerRelease } from "../lib/natsRelease";
import { JetStreamKv } from "../providers/jetstreamKv";

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

export interface NatsMember {
    node: NatsNode;
    wgPrivateKey: pulumi.Input<string>;
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
    /** Sources allowed to reach the client port. Empty: the client port is closed to the internet. */
    clientCidrs: string[];
    /**
     * The mesh as planned once (lib/topology.ts): the cluster name, the
     * WireGuard subnet the routes live in, and the service name every
     * data-plane certificate carries.
     */
    topology: Pick<MeshTopology, "clusterName" | "subnet" | "natsServiceName">;
    /**
     * One member per server (an odd number, so RAFT keeps a majority after
     * losing a minority): the node as planned (hostname, DNS name, WireGuard
     * address) and its WireGuard private key (WgSpokeKeys.keyFor(hostname),
     * base64 of 32 bytes, secret). The key travels with its node.
     */
    members: NatsMember[];
    /**
     * The hub every node dials and routes the subnet through: its public key
     * and public ip:port (WgCache.publicKey and WgCache.endpoint).
     */
    wgHub: { publicKey: pulumi.Input<string>; endpoint: pulumi.Input<string> };
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
    /** Where the nodes download nats-server and its checksums (a private mirror); the release site by default. */
    serverRelease?: NatsServerRelease;
}

/**
 * Inbound rules: the client port from the configured sources, the route
 * port from the WireGuard subnet only, SSH for break-glass; everything else
 * (monitoring included) is dropped by the policy.
 */
export function natsFirewallInbounds(input: { clientCidrs: string[]; wgSubnet: string; sshCidrs: string[] }): linode.types.input.FirewallInbound[] {
    const rule = (label: string, port: number, cidrs: string[]) => ({ label, action: "ACCEPT", protocol: "TCP", ports: String(port), ...cidrsByFamily(cidrs) });
    return [
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
 * certificates from the client CA, a random route password kept in a 0600
 * include file, nats-server pinned and checksum-verified, a hardened
 * systemd unit with Restart=always, and a firewall that admits routes only
 * from the WireGuard subnet.
 *
 * Every node is a spoke of the WireGuard mesh: cloud-init installs
 * wireguard-tools, writes the node's key (made by WgSpokeKeys) and a wg0.conf
 * whose one peer is the hub (WgCache), and brings wg0 up before nats-server
 * starts, so the route listener can bind the node's WireGuard address. Routes
 * between nodes travel spoke -> hub -> spoke inside the tunnel. The nodes'
 * user-data carries the hub's public key, so a hub that comes back with a
 * new key means new user-data, and so new instances, for every node.
 *
 * Certificates name the node's hostname, DNS name, WireGuard address and
 * the cluster's service name, all known before any instance exists. The
 * public IP is not a SAN: the certificate travels in the instance's
 * user-data, so it cannot depend on the instance's own address. Clients
 * reach a node by DNS name, or dial the public IP and verify the service
 * name (natsServiceName).
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

    constructor(name: string, args: NatsClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("meshstack:index:NatsCluster", name, {}, opts);
        const nodeCount = args.members.length;
        if (nodeCount < 1 || nodeCount > MAX_NATS_NODES || nodeCount % 2 === 0) {
            throw new pulumi.ResourceError(`meshstack:natsNodeCount ${nodeCount} is not allowed; allowed: an odd integer from 1 to ${MAX_NATS_NODES}`, this);
        }
        if (args.controlPlaneKv && args.controlPlaneKv.replicas > nodeCount) {
            throw new pulumi.ResourceError(`meshstack:natsKvReplicas ${args.controlPlaneKv.replicas} exceeds meshstack:natsNodeCount ${nodeCount}; allowed: 1 to ${nodeCount}`, this);
        }
        const clusterName = args.topology.clusterName;
        const subnet = args.topology.subnet;
        const topology = args.members.map((member) => member.node);
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
            label: linodeLabel(args.naming, `${name}-fw`),
            inboundPolicy: "DROP",
            outboundPolicy: "ACCEPT",
            inbounds: natsFirewallInbounds({ clientCidrs: args.clientCidrs, wgSubnet: subnet, sshCidrs: args.breakGlassSshCidrs ?? [] }),
            tags: linodeTags(["meshstack", args.naming.stack, ...(args.tags ?? [])]),
        }, { parent: this });
        this.firewallId = firewall.id.apply(Number);

        const unit = renderNatsUnit({ layout: NATS_NODE_LAYOUT, wants: [WG_QUICK_UNIT] });
        const installScript = renderNatsInstallScript({ layout: NATS_NODE_LAYOUT, monitorPort: NATS_DEFAULT_PORTS.monitor, readyTimeoutSeconds: 300, release: args.serverRelease });
        this.nodes = args.members.map(({ node, wgPrivateKey }) => {
            const route = this.leafCert(`${name}-${node.index}-route`, natsRouteCertProfile(node), routeCa);
            const server = this.leafCert(`${name}-${node.index}-server`, natsServerCertProfile(node, this.serviceName), clientCa);
            const wireguard = pulumi
                .all([wgPrivateKey, args.wgHub.publicKey, args.wgHub.endpoint])
                .apply(([privateKey, publicKey, endpoint]) =>
                    renderSpokeWgFiles({ address: node.wgAddress, subnet, privateKey, hub: { publicKey, endpoint } }));
            const cloudConfig = pulumi
                .all([routeCa.certPem, route.certPem, route.keyPem, clientCa.certPem, server.certPem, server.keyPem, password.result, wireguard])
                .apply(([routeCaPem, routeCertPem, routeKeyPem, clientCaPem, serverCertPem, serverKeyPem, clusterPassword, wgFiles]) =>
                    renderNatsCloudConfig({
                        node, layout: NATS_NODE_LAYOUT, unit, installScript, wireguard: wgFiles,
                        files: {
                            routeCaPem, routeCertPem, routeKeyPem, clientCaPem, serverCertPem, serverKeyPem,
                            natsConf: renderNatsConf({ clusterName, node, layout: NATS_NODE_LAYOUT, clientHost: "0.0.0.0", jetstream: args.jetstream ?? NATS_DEFAULT_JETSTREAM_LIMITS }),
                            clusterSecrets: renderNatsClusterSecrets({ self: node, peers: topology, password: clusterPassword }),
                        },
                    }),
                );
            return new MeshNode(`${name}-${node.index}`, {
                naming: args.naming,
                region: args.region,
                instanceType: args.instanceType,
                image: args.image,
                cloudConfig: pulumi.secret(cloudConfig),
                authorizedKeys: args.authorizedKeys,
                firewallId: this.firewallId,
                tags: ["nats", clusterName.toLowerCase(), ...(args.tags ?? [])],
                protect: args.protect,
                objectStore: args.objectStore,
                bootstrap: args.bootstrap,
            }, { parent: this });
        });
        this.publicIpv4s = pulumi.all(this.nodes.map((n) => n.ipv4s.apply((ips) => selectPublicIpv4(ips, undefined, "a NATS client address"))));
        this.clientUrls = this.publicIpv4s.apply((ips) => ips.map((ip) => `tls://${ip}:${NATS_DEFAULT_PORTS.client}`));

        if (args.dnsDomain) this.publishDns(name, args.dnsDomain, clusterName, topology);

        if (args.controlPlaneKv) {
            const deployer = this.leafCert(`${name}-deployer`, natsClientCertProfile(`${clusterName}-deployer`), clientCa);
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
            }, { parent: this, dependsOn: this.nodes, protect: args.protect });
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
