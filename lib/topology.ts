/**
 * The WireGuard address plan: which address each member of the mesh takes
 * in the hub's subnet. Config validation and the components ask the same
 * function, so a subnet too small for the cluster is refused with every
 * other config problem instead of failing halfway through a deploy.
 */
import { intToIpv4, ipv4Network } from "./ip";

/** Last octet of the first NATS node's WireGuard address; node i gets FIRST + i. */
export const NATS_FIRST_WG_HOST = 10;

export type PlanResult<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * WireGuard addresses of the NATS nodes: .10, .11, ... in the hub's subnet.
 * Fails when the subnet has no room for them or the hub sits on one of them.
 */
export function natsWgAddressPlan(hubInterfaceAddress: string, nodeCount: number): PlanResult<string[]> {
    const { base, size, prefix } = ipv4Network(hubInterfaceAddress);
    const hub = hubInterfaceAddress.split("/")[0];
    const last = base + NATS_FIRST_WG_HOST + nodeCount - 1;
    if (last >= base + size - 1) {
        const needed = Math.ceil(Math.log2(NATS_FIRST_WG_HOST + nodeCount + 1));
        return {
            ok: false,
            error: `subnet ${intToIpv4(base)}/${prefix} has no room for ${nodeCount} NATS node${nodeCount === 1 ? "" : "s"} at .${NATS_FIRST_WG_HOST}-.${NATS_FIRST_WG_HOST + nodeCount - 1}; allowed: a prefix of /${32 - needed} or wider`,
        };
    }
    const addresses = Array.from({ length: nodeCount }, (_, i) => intToIpv4(base + NATS_FIRST_WG_HOST + i));
    const clash = addresses.indexOf(hub);
    if (clash >= 0) {
        return {
            ok: false,
            error: `${hub} collides with NATS node ${clash}'s WireGuard address; allowed: an address outside .${NATS_FIRST_WG_HOST}-.${NATS_FIRST_WG_HOST + nodeCount - 1}`,
        };
    }
    return { ok: true, value: addresses };
}
