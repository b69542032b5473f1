/**
 * Who peers with whom in the WireGuard mesh, as data for the runtime
 * channel. The NATS nodes form a full mesh, each pair directly, so routes
 * never depend on a fourth machine: with the hub down, NATS keeps its
 * quorum. The hub is one more peer of every NATS node, with the whole
 * subnet as its AllowedIPs; WireGuard routes by the longest matching
 * prefix, so a NATS node reaches another NATS node (a /32) directly and
 * everything else in the subnet (operators) through the hub. Operators
 * peer with the hub only. Pure: no Pulumi.
 */
import { intToIpv4, ipv4InCidr, ipv4Network, ipv4ToInt, isIpv4 } from "./ip";
import { MAX_NATS_NODES } from "./limits";
import { DesiredPeer, DesiredState, RUNTIME_FORMAT_VERSION } from "./runtimeChannel";
import { NATS_FIRST_WG_HOST } from "./topology";
import { isWgPublicKey } from "./wgKey";

/** NAT mappings on the way to a peer expire after ~30 s on common routers. */
export const WG_PERSISTENT_KEEPALIVE_SECONDS = 25;

/** A member of the mesh once it has booted and published its key. */
export interface MeshMember {
    name: string;
    /** WireGuard IP without prefix. */
    address: string;
    publicKey: string;
    /** Public ip:port. */
    endpoint: string;
    /** The instance the member's desired state is made for. */
    instanceId: string;
}

/** An operator's (or any other outside) peer: dials the hub, reaches the mesh through it. */
export interface OperatorPeer {
    name: string;
    publicKey: string;
    /** WireGuard IP without prefix, inside the subnet. */
    address: string;
}

/**
 * The addresses operators may not take: the network, the broadcast, the hub
 * and every address a NATS node may ever get (up to MAX_NATS_NODES), so a
 * later scale-out never collides with an operator.
 */
export function reservedMeshAddresses(subnet: string, hubAddress: string): { reserved: Set<string>; describe: string } {
    const { base, size } = ipv4Network(subnet);
    const nats = Array.from({ length: MAX_NATS_NODES }, (_, i) => intToIpv4(base + NATS_FIRST_WG_HOST + i));
    return {
        reserved: new Set([intToIpv4(base), intToIpv4(base + size - 1), hubAddress, ...nats]),
        describe: `an address in ${subnet} other than the network, the broadcast, the hub ${hubAddress} and the NATS range ${nats[0]}-${nats[nats.length - 1]}`,
    };
}

/** `"<name> <public key> <address>"`, as meshstack:wgOperatorPeers lists them. */
export const OPERATOR_PEER_FORMAT = '"<name> <WireGuard public key> <address>", e.g. "laptop-ana 3CMqZ...= 10.44.0.200"';

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** Parses and checks every operator peer at once; the error lists every bad entry. */
export function parseOperatorPeers(entries: string[], subnet: string, hubAddress: string): Parsed<OperatorPeer[]> {
    const { reserved, describe } = reservedMeshAddresses(subnet, hubAddress);
    const problems: string[] = [];
    const peers: OperatorPeer[] = [];
    const seen = new Map<string, string>();
    entries.forEach((entry, i) => {
        const parts = entry.trim().split(/\s+/);
        if (parts.length !== 3) {
            problems.push(`entry ${i} ${JSON.stringify(entry)} is not ${OPERATOR_PEER_FORMAT}`);
            return;
        }
        const [name, publicKey, address] = parts;
        const bad: string[] = [];
        if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) bad.push(`name ${JSON.stringify(name)} is not up to 63 letters, digits and . _ -`);
        if (!isWgPublicKey(publicKey)) bad.push(`${JSON.stringify(publicKey)} is not a WireGuard public key (base64 of 32 bytes)`);
        if (!isIpv4(address) || !ipv4InCidr(address, subnet) || reserved.has(address)) bad.push(`address ${JSON.stringify(address)} is not allowed; allowed: ${describe}`);
        for (const unique of [name, publicKey, address]) {
            const other = seen.get(unique);
            if (other !== undefined) bad.push(`${unique} is also used by entry ${other}`);
            seen.set(unique, String(i));
        }
        if (bad.length) problems.push(`entry ${i} (${name}): ${bad.join("; ")}`);
        else peers.push({ name, publicKey, address });
    });
    return problems.length ? { ok: false, error: problems.join(". ") } : { ok: true, value: [...peers].sort((a, b) => ipv4ToInt(a.address) - ipv4ToInt(b.address)) };
}

/** The hub's peers: every NATS node (dialled at its endpoint) and every operator (who dials in). */
export function hubDesiredState(hub: MeshMember, nats: MeshMember[], operators: OperatorPeer[]): DesiredState {
    const peers: DesiredPeer[] = [
        ...nats.map((member) => ({ name: member.name, publicKey: member.publicKey, endpoint: member.endpoint, allowedIps: [`${member.address}/32`], keepaliveSeconds: WG_PERSISTENT_KEEPALIVE_SECONDS })),
        ...operators.map((operator) => ({ name: operator.name, publicKey: operator.publicKey, allowedIps: [`${operator.address}/32`] })),
    ];
    return { version: RUNTIME_FORMAT_VERSION, node: hub.name, instanceId: hub.instanceId, wireguard: { peers } };
}

/** A NATS node's peers: the hub for the whole subnet, every other NATS node directly. */
export function natsPeers(self: MeshMember, hub: MeshMember, nats: MeshMember[], subnet: string): DesiredPeer[] {
    return [
        { name: hub.name, publicKey: hub.publicKey, endpoint: hub.endpoint, allowedIps: [subnet], keepaliveSeconds: WG_PERSISTENT_KEEPALIVE_SECONDS },
        ...nats
            .filter((member) => member.name !== self.name)
            .map((member) => ({ name: member.name, publicKey: member.publicKey, endpoint: member.endpoint, allowedIps: [`${member.address}/32`], keepaliveSeconds: WG_PERSISTENT_KEEPALIVE_SECONDS })),
    ];
}
