/** The WireGuard cache/gateway node: its instance, port and address, the operators' peers, and how long an `up` waits for a node's key. */
import { ipv4Network, ipv4ToInt, isIpv4Cidr } from "../ip";
import { PUBLISH_TIMEOUT_MAX_SECONDS, PUBLISH_TIMEOUT_MIN_SECONDS, WG_LISTEN_PORT_MAX, WG_LISTEN_PORT_MIN } from "../limits";
import { OPERATOR_PEER_FORMAT, OperatorPeer, parseOperatorPeers } from "../meshPeers";
import { fingerprint } from "../secretText";
import { natsWgAddressPlan, wgSubnet } from "../topology";
import { looksClamped } from "../wgKey";
import { Check, CheckedValues, CrossKeyRule, intRange, KeySpec, matches, stringList, WarningRule } from "./keySpec";
import { qualify } from "./report";
import { LINODE_IMAGE, LINODE_TYPE } from "./shapes";

export interface WgCacheConfig {
    instanceType: string;
    image: string;
    listenPort: number;
    address: string;
    /** Parsed and checked meshstack:wgOperatorPeers. */
    operatorPeers: OperatorPeer[];
    pubkeyPollTimeoutSeconds: number;
}

/** An address a host can take: not its subnet's network or broadcast address (/31 and /32 have neither). */
const interfaceAddress: Check = (v) => {
    if (typeof v !== "string" || !isIpv4Cidr(v)) return "is not an IPv4 address with prefix";
    const { base, size, prefix } = ipv4Network(v);
    const host = ipv4ToInt(v.split("/")[0]) - base;
    if (prefix <= 30 && host === 0) return "is the network address of its subnet, not an interface address";
    if (prefix <= 30 && host === size - 1) return "is the broadcast address of its subnet, not an interface address";
    return undefined;
};

export const wireguardKeys = {
    wgCacheInstanceType: {
        type: "string", default: "g6-nanode-1", check: matches(LINODE_TYPE),
        description: "Linode type of the WireGuard cache/gateway node.",
        allowed: "a Linode type id such as g6-nanode-1, in lib/linodeCatalog.json or meshstack:linodeCatalogExtraIds",
    },
    wgCacheImage: {
        type: "string", default: "linode/debian12", check: matches(LINODE_IMAGE),
        description: "Image of the WireGuard cache/gateway node.", allowed: "a Linode image id such as linode/debian12",
    },
    wgListenPort: {
        type: "integer", default: 51820, check: intRange(WG_LISTEN_PORT_MIN, WG_LISTEN_PORT_MAX),
        description: "UDP port WireGuard listens on.", allowed: `an integer from ${WG_LISTEN_PORT_MIN} to ${WG_LISTEN_PORT_MAX}`,
    },
    wgCacheAddress: {
        type: "string", default: "10.44.0.1/24", check: interfaceAddress,
        description: "The cache node's wg0 address; the NATS nodes take addresses from the same subnet.",
        allowed: "an IPv4 interface address with prefix, such as 10.44.0.1/24",
    },
    wgOperatorPeers: {
        type: "array", default: [], check: stringList,
        description: "WireGuard peers of operators (and other outside machines) the hub accepts; they reach the NATS nodes through it. Adding or removing one replaces nothing.",
        allowed: `a list of ${OPERATOR_PEER_FORMAT}, each address in the mesh subnet outside the hub's and the NATS range`,
    },
    wgPubkeyPollTimeoutSeconds: {
        type: "integer", default: 480, check: intRange(PUBLISH_TIMEOUT_MIN_SECONDS, PUBLISH_TIMEOUT_MAX_SECONDS),
        description: "How long `pulumi up` waits for a new node to publish its WireGuard public key; a node's bootstrap object is deleted when it publishes, or after this long.",
        allowed: `an integer from ${PUBLISH_TIMEOUT_MIN_SECONDS} to ${PUBLISH_TIMEOUT_MAX_SECONDS}`,
    },
} satisfies Record<string, KeySpec>;

export const wgAddressPlanRule: CrossKeyRule = (v) => {
    const address = v.wgCacheAddress as string | undefined;
    const nodes = v.natsNodeCount as number | undefined;
    if (address === undefined || nodes === undefined) return undefined;
    const plan = natsWgAddressPlan(address, nodes);
    return plan.ok ? undefined : { key: qualify("wgCacheAddress"), value: address, message: plan.error };
};

export const operatorPeersRule: CrossKeyRule = (v) => {
    const address = v.wgCacheAddress as string | undefined;
    const entries = v.wgOperatorPeers as string[] | undefined;
    if (address === undefined || entries === undefined) return undefined;
    const parsed = parseOperatorPeers(entries, wgSubnet(address), address.split("/")[0]);
    return parsed.ok ? undefined : { key: qualify("wgOperatorPeers"), value: JSON.stringify(entries), message: `${parsed.error}; allowed: ${wireguardKeys.wgOperatorPeers.allowed}` };
};

/**
 * `wg genkey` output pasted where `wg pubkey` output belongs is published in
 * clear in the hub's desired state. Shape alone cannot prove it (1 public
 * key in 32 looks the same), so this warns, naming the peer and a fingerprint.
 */
export const operatorKeyWarnings: WarningRule = (v) => {
    const entries = v.wgOperatorPeers as string[] | undefined;
    const address = v.wgCacheAddress as string | undefined;
    if (entries === undefined || address === undefined) return [];
    const parsed = parseOperatorPeers(entries, wgSubnet(address), address.split("/")[0]);
    if (!parsed.ok) return [];
    return parsed.value.filter((peer) => looksClamped(peer.publicKey)).map((peer) => ({
        key: qualify("wgOperatorPeers"),
        message: `peer ${peer.name}: the key (${fingerprint(peer.publicKey)}) has the shape of a WireGuard private key (clamped, as wg genkey makes them; 1 public key in 32 looks the same by chance). If it came from wg genkey, give \`wg pubkey < key\` output instead and make a new key pair: a private key here is published in clear`,
    }));
};

/** The operator peers of a config that passed operatorPeersRule. */
function operatorPeersOf(entries: string[], address: string): OperatorPeer[] {
    const parsed = parseOperatorPeers(entries, wgSubnet(address), address.split("/")[0]);
    if (!parsed.ok) throw new Error(`${parsed.error} (operatorPeersRule should have refused this)`);
    return parsed.value;
}

export function wgCacheConfig(v: CheckedValues): WgCacheConfig {
    return {
        instanceType: v.wgCacheInstanceType,
        image: v.wgCacheImage,
        listenPort: v.wgListenPort,
        address: v.wgCacheAddress,
        operatorPeers: operatorPeersOf(v.wgOperatorPeers, v.wgCacheAddress),
        pubkeyPollTimeoutSeconds: v.wgPubkeyPollTimeoutSeconds,
    };
}
