import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import { MeshNode } from "./meshNode";
import { ObjectStore } from "./objectStore";
import { agentFiles } from "../cloudinit/agent";
import { AGENT_KEY_PLACEHOLDER, NODE_BOOTSTRAP_LOG_PATH, PUBLISH_URL_PLACEHOLDER } from "../cloudinit/nodeBootstrap";
import { hubInterfaceSection, renderPeerSection, renderWgCacheCloudConfig } from "../cloudinit/wgCache";
import { MeshMember } from "../lib/meshPeers";
import { desiredStateKey } from "../lib/runtimeChannel";
import { BootstrapConfig, qualify } from "../lib/config";
import { publicEndpoint, selectPublicIpv4 } from "../lib/endpoint";
import { cidrsByFamily } from "../lib/ip";
import { linodeTags } from "../lib/environments";
import { firewallLabel, NamingContext } from "../lib/naming";
import { PollPolicy } from "../providers/wgPubkeyPoll";

export interface WgCacheArgs {
    /** Project and stack, for physical names and the object key. */
    naming: NamingContext;
    /** Linode region (meshstack:region). */
    region: string;
    /** Linode type (meshstack:wgCacheInstanceType), e.g. g6-nanode-1. */
    instanceType: string;
    /** Linode image (meshstack:wgCacheImage), e.g. linode/debian12. The bootstrap script expects Debian (apt). */
    image: string;
    /** UDP port wg0 listens on (meshstack:wgListenPort); opened in the firewall. */
    listenPort: number;
    /** wg0 address with prefix (meshstack:wgCacheAddress; MeshTopology.hub.interfaceAddress). */
    address: string;
    /** The mesh's WireGuard subnet (MeshTopology.subnet): the peer section's AllowedIPs. */
    subnet: string;
    /** SSH public keys for root (meshstack:sshAuthorizedKeys). */
    authorizedKeys: string[];
    /**
     * Sources allowed to tcp/22 (meshstack:breakGlassSshCidrs). Empty keeps
     * tcp/22 closed; a closed tcp/22 makes boot failures
     * undebuggable, so operators open it to their own address.
     */
    breakGlassSshCidrs: string[];
    /** How long `pulumi up` waits for the public key (meshstack:wgPubkeyPollTimeoutSeconds). */
    pubkeyPollTimeoutSeconds: number;
    /** Overrides of the poll schedule; defaults are DEFAULT_POLL_POLICY. */
    pollPolicy?: Partial<Omit<PollPolicy, "timeoutMs">>;
    /** The buckets: the node publishes its public key to the runtime bucket, and its agent reads its peers there. */
    objectStore: ObjectStore;
    /** Bootstrap delivery limits and presigned URL lifetime. */
    bootstrap: BootstrapConfig;
    /** Linode tags of the node and its firewall (environment, stack, PR). */
    tags?: string[];
    /** Rebuilds of the node the stack accepts (meshstack:acceptRebuilds); the hub's are named, never refused. */
    acceptedRebuilds?: string[];
}

const WORLD = new Set(["0.0.0.0/0", "::/0"]);

/** Inbound rules: WireGuard from anywhere, SSH only from the break-glass sources. */
export function wgCacheInboundRules(listenPort: number, breakGlassSshCidrs: string[]): linode.types.input.FirewallInbound[] {
    const rules: linode.types.input.FirewallInbound[] = [
        { label: "wireguard", action: "ACCEPT", protocol: "UDP", ports: String(listenPort), ipv4s: ["0.0.0.0/0"], ipv6s: ["::/0"] },
    ];
    if (breakGlassSshCidrs.length > 0) {
        rules.push({ label: "break-glass-ssh", action: "ACCEPT", protocol: "TCP", ports: "22", ...cidrsByFamily(breakGlassSshCidrs) });
    }
    return rules;
}


/**
 * The WireGuard cache/gateway node: a Linode behind a DROP-by-default
 * firewall that generates its keypair at first boot and publishes the
 * public key through a presigned PUT; `pulumi up` waits for that key and
 * outputs a ready `[Peer]` section. It is the way into the mesh: operators
 * peer with it, and it forwards between them and the NATS nodes on wg0, and
 * only there. The NATS nodes do not depend on it among themselves.
 *
 * Its user-data holds nothing that changes with the rest of the mesh: its
 * peers (NATS nodes, operators) reach its agent through the runtime
 * channel. So the hub is replaced only by its own inputs (image, region,
 * listen port, address, SSH keys), and a replacement changes no NATS node's
 * user-data: their agents switch to the new key. Each boot generation
 * publishes under its own key, and the poll takes only a document naming
 * the new instance. To rebuild the node by hand, replace its label
 * (`pulumi up --replace <urn of NAME-node-label>`): that renews the
 * generation and signs a fresh URL.
 */
export class WgCache extends pulumi.ComponentResource {
    public readonly firewall: linode.Firewall;
    public readonly node: MeshNode;
    public readonly instanceId: pulumi.Output<number>;
    public readonly label: pulumi.Output<string>;
    /** The node's public IPv4. */
    public readonly publicIpv4: pulumi.Output<string>;
    /** ip:port peers connect to. */
    public readonly endpoint: pulumi.Output<string>;
    /** The node's WireGuard public key, as the node published it. */
    public readonly publicKey: pulumi.Output<string>;
    /** wg0 address with prefix. */
    public readonly wgAddress: string;
    /** The WireGuard subnet, e.g. 10.44.0.0/24. */
    public readonly wgSubnet: string;
    /** A wg-quick `[Peer]` section for this node, to paste into an operator's config. */
    public readonly peerSection: pulumi.Output<string>;
    /** The hub as the runtime channel knows it (MeshRuntime's `hub`). */
    public readonly member: pulumi.Output<MeshMember>;

    constructor(name: string, args: WgCacheArgs, opts?: pulumi.ComponentResourceOptions) {
        super("meshstack:index:WgCache", name, {}, opts);
        this.wgAddress = args.address;
        this.wgSubnet = args.subnet;
        const world = args.breakGlassSshCidrs.filter((c) => WORLD.has(c));
        if (world.length > 0) {
            pulumi.log.warn(
                `meshstack:breakGlassSshCidrs contains ${world.join(", ")}: tcp/22 of the WireGuard cache is open to the whole internet. ` +
                    "Narrow it to your own address (e.g. 203.0.113.7/32) once the node boots reliably.",
                this,
            );
        }

        this.firewall = new linode.Firewall(`${name}-firewall`, {
            // `-fw`, as the NATS firewall: a firewall label has 32 characters (lib/linodeLimits.ts).
            label: firewallLabel(args.naming, `${name}-fw`),
            inboundPolicy: "DROP",
            inbounds: wgCacheInboundRules(args.listenPort, args.breakGlassSshCidrs),
            outboundPolicy: "ACCEPT",
            tags: linodeTags(["meshstack", args.naming.stack, ...(args.tags ?? [])]),
        }, { parent: this });

        const store = args.objectStore;
        const hub = { node: name, publishPutUrl: PUBLISH_URL_PLACEHOLDER, listenPort: args.listenPort, address: args.address, subnet: args.subnet };
        const runtime = store.runtime;
        const cloudConfig = pulumi.secret(
            pulumi
                .all([runtime.endpoint, runtime.region, runtime.bucket])
                .apply(([endpoint, region, bucket]) =>
                    renderWgCacheCloudConfig(hub, agentFiles({
                        node: name, endpoint, region, bucket,
                        key: desiredStateKey(args.naming.stack, name),
                        wgAddress: args.address,
                        wgListenPort: args.listenPort,
                        interfaceSection: hubInterfaceSection(hub),
                    }, AGENT_KEY_PLACEHOLDER))),
        );
        this.node = new MeshNode(`${name}-node`, {
            naming: args.naming,
            region: args.region,
            instanceType: args.instanceType,
            image: args.image,
            cloudConfig,
            publish: {
                node: name,
                runtime: store.runtime,
                expectedRequests: {},
                bootstrapLogPath: NODE_BOOTSTRAP_LOG_PATH,
                timeoutSeconds: args.pubkeyPollTimeoutSeconds,
                pollPolicy: args.pollPolicy,
            },
            authorizedKeys: args.authorizedKeys,
            firewallId: this.firewall.id.apply(Number),
            tags: ["wg-cache", ...(args.tags ?? [])],
            objectStore: store,
            bootstrap: args.bootstrap,
            rebuild: { accepted: args.acceptedRebuilds ?? [], imageSource: qualify("wgCacheImage") },
        }, { parent: this });
        this.instanceId = this.node.instanceId;
        this.label = this.node.label;

        const primary = this.node.instance.ipAddress;
        this.publicIpv4 = pulumi.all([this.node.ipv4s, primary]).apply(([ips, main]) => selectPublicIpv4(ips, main));
        this.endpoint = pulumi.all([this.node.ipv4s, primary]).apply(([ips, main]) => publicEndpoint(ips, args.listenPort, main));

        this.publicKey = this.node.published.publicKey;
        this.member = pulumi.all([this.publicKey, this.endpoint, this.node.instance.id]).apply(([publicKey, endpoint, instanceId]) => ({
            name, address: args.address.split("/")[0], publicKey, endpoint, instanceId,
        }));

        this.peerSection = pulumi
            .all([this.publicKey, this.endpoint, this.label])
            .apply(([publicKey, endpoint, label]) =>
                renderPeerSection({ name: `meshstack WireGuard cache ${label}`, publicKey, endpoint, allowedIps: this.wgSubnet }),
            );

        this.registerOutputs({
            instanceId: this.instanceId,
            label: this.label,
            publicIpv4: this.publicIpv4,
            endpoint: this.endpoint,
            publicKey: this.publicKey,
            wgAddress: this.wgAddress,
            wgSubnet: this.wgSubnet,
            peerSection: this.peerSection,
        });
    }
}
