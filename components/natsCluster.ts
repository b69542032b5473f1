import * as pulumi from "@pulumi/pulumi";
import { JetStreamLimits, NATS_DEFAULT_JETSTREAM_LIMITS } from "../cloudinit/nats";
import { BootstrapConfig } from "../lib/config";
import { MAX_NATS_NODES } from "../lib/limits";
import { NamingContext } from "../lib/naming";
import { MeshTopology, NatsNode } from "../lib/topology";
import { JetStreamKv } from "../providers/jetstreamKv";
import { NatsRejoin } from "../providers/natsRejoin";
import { NatsMetaGroup } from "../providers/natsMetaGroup";
import { NatsMembershipArgs, NatsScaleDown } from "../providers/natsScaleDown";
import { MeshNode } from "./meshNode";
import type { NatsRuntimeMember } from "./meshRuntime";
import { natsClientAddresses, natsDnsRecords } from "./nats/addresses";
import { natsClusterCredentials, natsDeployerAccess } from "./nats/certificates";
import { natsControlPlaneKv, NatsControlPlaneKvArgs } from "./nats/controlPlaneKv";
import { natsFirewall } from "./nats/firewall";
import { natsMembers } from "./nats/members";
import { natsImageRolloutGuard, natsMembershipArgs, natsMetaGroup, natsRejoinWaits, natsScaleDown, natsStreamGuards } from "./nats/rollout";
import { ObjectStore } from "./objectStore";

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
     * With it, each node also gets a stream guard, which refuses to let the
     * node be replaced or removed while it holds the only replica of a stream
     * (meshstack:natsAcceptStreamLoss accepts named losses), and the cluster
     * a scale-down, which moves every replica off the nodes a lower
     * natsNodeCount removes and takes them out of the meta group first.
     * 0 or unset: no wait, no guard.
     */
    rejoinTimeoutSeconds?: number;
    /** Rebuilds of protected nodes the stack accepts (meshstack:acceptRebuilds). */
    acceptedRebuilds?: string[];
}

/**
 * A NATS JetStream cluster of nodeCount Linode instances: route CA and
 * per-node route certificates (mutual TLS between servers only), data-plane
 * certificates from the client CA, a random route password kept in 0600
 * files, a hardened systemd unit (the nats-server release itself reaches
 * each node through MeshRuntime, and is checksum-verified there),
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
    /**
     * The scale-down (on with the rejoin waits): every desired state must be
     * written after it (MeshRuntimeArgs.after), so a leaving node stays every
     * member's peer and route until it has left.
     */
    public readonly scaleDown?: NatsScaleDown;
    /** What MeshRuntime writes into each node's desired state. */
    public readonly runtimeMembers: NatsRuntimeMember[];
    private readonly componentName: string;
    /** What the meta group's settling needs (settleMetaGroup); set with the scale-down. */
    private readonly membership?: NatsMembershipArgs;

    constructor(name: string, args: NatsClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("meshstack:index:NatsCluster", name, {}, opts);
        this.componentName = name;
        const problem = NatsCluster.argsProblem(args);
        if (problem) throw new pulumi.ResourceError(problem, this);
        const { clusterName, subnet, natsServiceName } = args.topology;
        this.wgAddresses = args.nodes.map((n) => n.wgAddress);
        this.hostnames = args.nodes.map((n) => n.hostname);
        this.serviceName = natsServiceName;
        const runtime = args.objectStore.runtime;
        const tags = args.tags ?? [];

        const credentials = natsClusterCredentials(this, name, { clusterName, clientCa: args.clientCa });
        this.routeCaCertPem = credentials.routeCa.certPem;
        this.clientCaCertPem = credentials.clientCa.certPem;
        this.clientCaKeyPem = pulumi.secret(credentials.clientCa.keyPem);

        this.firewallId = natsFirewall(this, name, { naming: args.naming, clientCidrs: args.clientCidrs, wgSubnet: subnet, sshCidrs: args.breakGlassSshCidrs ?? [], tags });
        const rollout = natsImageRolloutGuard(this, name, {
            stack: args.naming.stack, nodes: args.nodes, image: args.image, nodeImages: args.nodeImages ?? {}, runtime, rejoinWaits: !!args.rejoinTimeoutSeconds,
        });
        const members = natsMembers(this, name, {
            hosting: {
                naming: args.naming, region: args.region, instanceType: args.instanceType, authorizedKeys: args.authorizedKeys, firewallId: this.firewallId,
                tags, protect: args.protect, objectStore: args.objectStore, bootstrap: args.bootstrap, publishTimeoutSeconds: args.publishTimeoutSeconds,
                acceptedRebuilds: args.acceptedRebuilds ?? [],
            },
            servers: { clusterName, subnet, serviceName: this.serviceName, jetstream: args.jetstream ?? NATS_DEFAULT_JETSTREAM_LIMITS },
            nodes: args.nodes, rollout, credentials,
        });
        this.nodes = members.meshNodes;
        this.runtimeMembers = members.runtimeMembers;

        const addresses = natsClientAddresses(this.nodes);
        this.publicIpv4s = pulumi.all(addresses.publicIpv4s);
        this.clientUrls = pulumi.all(addresses.clientUrls);
        if (args.dnsDomain) natsDnsRecords(this, name, { dnsDomain: args.dnsDomain, clusterName, nodes: args.nodes, meshNodes: this.nodes });

        // The deploy's own client identity, for what it does over the client port.
        const deployer = args.controlPlaneKv || args.rejoinTimeoutSeconds
            ? natsDeployerAccess(this, name, { clusterName, serviceName: this.serviceName, clientCa: credentials.clientCa })
            : undefined;
        this.rejoins = args.rejoinTimeoutSeconds && deployer
            ? natsRejoinWaits(this, name, {
                stack: args.naming.stack, nodes: args.nodes, meshNodes: this.nodes, clientUrls: addresses.clientUrls, deployer, runtime, timeoutSeconds: args.rejoinTimeoutSeconds,
            })
            : [];
        // Where the rejoin wait can reach the client port, so can the guards; elsewhere nothing can ask JetStream before a node goes.
        if (args.rejoinTimeoutSeconds && deployer) {
            natsStreamGuards(this, name, { nodes: args.nodes, meshNodes: this.nodes, clientUrls: addresses.clientUrls, deployer });
            this.membership = natsMembershipArgs({
                nodes: args.nodes, clientUrls: addresses.clientUrls, deployer, systemPassword: credentials.systemPassword, timeoutSeconds: args.rejoinTimeoutSeconds,
            });
            this.scaleDown = natsScaleDown(this, name, this.membership, this.nodes);
        }
        if (args.controlPlaneKv && deployer) {
            // After the scale-down too: the bucket is checked on the cluster as this up leaves it, not mid-evacuation.
            const after = [...this.nodes, ...this.rejoins, ...(this.scaleDown ? [this.scaleDown] : [])];
            this.controlPlaneKv = natsControlPlaneKv(this, name, { kv: args.controlPlaneKv, servers: this.clientUrls, deployer, after, protect: args.protect });
        }

        this.registerOutputs({
            hostnames: this.hostnames, wgAddresses: this.wgAddresses, serviceName: this.serviceName, publicIpv4s: this.publicIpv4s, clientUrls: this.clientUrls,
            firewallId: this.firewallId, routeCaCertPem: this.routeCaCertPem, clientCaCertPem: this.clientCaCertPem, clientCaKeyPem: this.clientCaKeyPem,
        });
    }

    /**
     * The last step of an `up` that lowers natsNodeCount: after `after` (the
     * mesh's desired states and upgrade waits, MeshRuntime.written), it waits
     * until no member routes to a leaving node and makes the JetStream meta
     * group the members alone (providers/natsMetaGroup.ts). Undefined where
     * the cluster has no scale-down (no rejoin waits).
     */
    public settleMetaGroup(after: pulumi.Resource[]): NatsMetaGroup | undefined {
        return this.membership ? natsMetaGroup(this, this.componentName, this.membership, after) : undefined;
    }

    /** Why these args cannot make a cluster; undefined when they can. Each problem names the config key behind it. */
    static argsProblem(args: Pick<NatsClusterArgs, "nodes" | "controlPlaneKv">): string | undefined {
        const nodeCount = args.nodes.length;
        if (nodeCount < 1 || nodeCount > MAX_NATS_NODES || nodeCount % 2 === 0) {
            return `meshstack:natsNodeCount ${nodeCount} is not allowed; allowed: an odd integer from 1 to ${MAX_NATS_NODES}`;
        }
        if (args.controlPlaneKv && args.controlPlaneKv.replicas > nodeCount) {
            return `meshstack:natsKvReplicas ${args.controlPlaneKv.replicas} exceeds meshstack:natsNodeCount ${nodeCount}; allowed: 1 to ${nodeCount}`;
        }
        return undefined;
    }
}
