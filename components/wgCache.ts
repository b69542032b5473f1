import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { MeshNode } from "./meshNode";
import { ObjectStore } from "./objectStore";
import { renderPeerSection, renderWgCacheCloudConfig, WG_BOOTSTRAP_LOG_PATH } from "../cloudinit/wgCache";
import { WgSpokePeer } from "../cloudinit/wgMesh";
import { BootstrapConfig } from "../lib/config";
import { publicEndpoint, selectPublicIpv4 } from "../lib/endpoint";
import { cidrsByFamily } from "../lib/ip";
import { linodeTags } from "../lib/environments";
import { linodeLabel, NamingContext } from "../lib/naming";
import { PresignedUrl } from "../providers/presignedUrl";
import { DEFAULT_POLL_POLICY, PollPolicy, WgPubkeyPoll } from "../providers/wgPubkeyPoll";
import { sha256Hex } from "../lib/digest";

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
    /**
     * The spokes (NATS nodes) this hub accepts: a `[Peer]` with the spoke's
     * public key and its address as /32 each (WgSpokeKeys.peers). They are
     * in the node's user-data, so changing the list replaces the node, and
     * the replacement generates a new key of its own, which every spoke's
     * user-data carries: the spokes are replaced with it.
     */
    spokes?: pulumi.Input<WgSpokePeer[]>;
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
    /** The bucket the node publishes its public key to. */
    objectStore: ObjectStore;
    /** Bootstrap delivery limits and presigned URL lifetime. */
    bootstrap: BootstrapConfig;
    /** Linode tags of the node and its firewall (environment, stack, PR). */
    tags?: string[];
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
 * The WireGuard cache/gateway node: a Linode behind a DROP-by-
 * default firewall that generates its keypair at first boot and publishes
 * the public key through a presigned PUT; `pulumi up` waits for that key and
 * outputs a ready `[Peer]` section. It is the hub of the mesh: it lists the
 * spokes' keys and forwards between spokes on wg0, and only there.
 *
 * A rebuild must never boot with an expired URL nor pick up the previous
 * node's key. A boot nonce, renewed by every input that replaces the
 * instance, names the object key and re-signs the URL, so each generation of
 * the node has its own key path and a fresh URL in its user-data. To rebuild
 * the node by hand, replace the nonce (`pulumi up --replace <urn of
 * NAME-boot>`), not the instance: a bare instance replacement keeps the old
 * URL and object.
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
    /** Object key the node publishes its public key to. */
    public readonly pubkeyObjectKey: pulumi.Output<string>;

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
            label: linodeLabel(args.naming, `${name}-firewall`),
            inboundPolicy: "DROP",
            inbounds: wgCacheInboundRules(args.listenPort, args.breakGlassSshCidrs),
            outboundPolicy: "ACCEPT",
            tags: linodeTags(["meshstack", args.naming.stack, ...(args.tags ?? [])]),
        }, { parent: this });

        // Keepers: every input that replaces the instance or re-signs the URL
        // (which changes the user-data, so also replaces the instance). Each
        // new instance thus gets a fresh URL and a key path the previous
        // node's key cannot be waiting at.
        const store = args.objectStore;
        const spokes = pulumi.output(args.spokes ?? []);
        const template = spokes.apply((peers) =>
            renderWgCacheCloudConfig({ pubkeyPutUrl: "https://presigned.invalid/", listenPort: args.listenPort, address: args.address, subnet: args.subnet, spokes: peers }));
        const bootNonce = new random.RandomId(`${name}-boot`, {
            byteLength: 6,
            keepers: {
                image: args.image,
                region: args.region,
                authorizedKeys: sha256Hex(args.authorizedKeys.join("\n")),
                cloudConfigTemplate: template.apply(sha256Hex),
                urlExpirySeconds: String(args.bootstrap.urlExpirySeconds),
                store: pulumi
                    .all([store.access.endpoint, store.access.region, store.access.bucket, store.access.accessKeyId, store.access.secretAccessKey])
                    .apply((parts) => sha256Hex(parts.join("\n"))),
            },
        }, { parent: this });

        this.pubkeyObjectKey = pulumi.interpolate`${store.bootstrapPrefix}wg/${args.naming.stack}/${name}/${bootNonce.hex}/pubkey`;
        const putUrl = new PresignedUrl(`${name}-pubkey-put`, {
            ...store.access,
            key: this.pubkeyObjectKey,
            method: "PUT",
            expiresInSeconds: args.bootstrap.urlExpirySeconds,
            keepers: { boot: bootNonce.hex },
        }, { parent: this });

        const cloudConfig = pulumi.secret(
            pulumi.all([putUrl.url, spokes]).apply(([url, peers]) =>
                renderWgCacheCloudConfig({ pubkeyPutUrl: url, listenPort: args.listenPort, address: args.address, subnet: args.subnet, spokes: peers })),
        );
        this.node = new MeshNode(`${name}-node`, {
            naming: args.naming,
            region: args.region,
            instanceType: args.instanceType,
            image: args.image,
            cloudConfig,
            authorizedKeys: args.authorizedKeys,
            firewallId: this.firewall.id.apply(Number),
            tags: ["wg-cache", ...(args.tags ?? [])],
            objectStore: store,
            bootstrap: args.bootstrap,
        }, { parent: this });
        this.instanceId = this.node.instanceId;
        this.label = this.node.label;

        const primary = this.node.instance.ipAddress;
        this.publicIpv4 = pulumi.all([this.node.ipv4s, primary]).apply(([ips, main]) => selectPublicIpv4(ips, main));
        this.endpoint = pulumi.all([this.node.ipv4s, primary]).apply(([ips, main]) => publicEndpoint(ips, args.listenPort, main));

        const policy: PollPolicy = { ...DEFAULT_POLL_POLICY, ...args.pollPolicy, timeoutMs: args.pubkeyPollTimeoutSeconds * 1000 };
        const poll = new WgPubkeyPoll(`${name}-pubkey`, {
            ...store.access,
            key: this.pubkeyObjectKey,
            // A new instance publishes a new key: the poll runs again.
            instanceId: this.node.instanceId.apply(String),
            nodeLabel: this.node.label,
            nodeAddress: this.publicIpv4,
            bootstrapLogPath: WG_BOOTSTRAP_LOG_PATH,
            policy,
        }, { parent: this, dependsOn: [this.node] });
        this.publicKey = poll.publicKey;

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
            pubkeyObjectKey: this.pubkeyObjectKey,
        });
    }
}
