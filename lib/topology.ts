/**
 * Who is who in the mesh, worked out once: the WireGuard subnet, the hub's
 * address, and each NATS node's hostname, DNS name and WireGuard address.
 * index.ts plans it once and hands it down; config validation asks the same
 * address plan, so a subnet too small for the cluster is refused with every
 * other config problem instead of failing halfway through a deploy. Pure:
 * no Pulumi, no rendering.
 */
import { intToIpv4, ipv4Network } from "./ip";

export interface NatsPorts {
    /** Data plane (clients, the deployer's KV provider). */
    client: number;
    /** Server-to-server routes; bound to the WireGuard address. */
    route: number;
    /** HTTP monitoring (/healthz, /routez, /jsz); bound to localhost. */
    monitor: number;
}

export const NATS_DEFAULT_PORTS: NatsPorts = { client: 4222, route: 6222, monitor: 8222 };

/**
 * UDP port WireGuard listens on at every NATS node: the nodes dial each
 * other directly. Fixed, so changing the hub's port (meshstack:wgListenPort)
 * touches the hub alone.
 */
export const NATS_WG_LISTEN_PORT = 51820;

export interface NatsNode {
    index: number;
    /** server_name in nats.conf and the node's hostname. */
    hostname: string;
    /** Fully qualified name when the stack has a DNS domain. */
    dnsName?: string;
    /** The node's WireGuard address: routes listen and dial here. */
    wgAddress: string;
    ports: NatsPorts;
}


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

/** Hostname (and server_name) of node i: a DNS label, stable across `up`s. */
export function natsHostname(clusterName: string, index: number): string {
    const label = `${clusterName}-${index}`.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+/, "");
    return label.slice(0, 63).replace(/-+$/, "");
}

/**
 * The name every data-plane certificate carries besides the node's own
 * names. A node's public IP is only known once Linode has created the
 * instance, and the instance's user-data carries the certificate, so the IP
 * cannot be a SAN without a cycle. Clients that dial a public IP (the
 * deployer's KV provider) verify this name instead (TLS server name), and
 * with a DNS domain it is also published as a round-robin record.
 */
export function natsServiceName(clusterName: string, dnsDomain?: string): string {
    return dnsDomain ? `${clusterName.toLowerCase()}.${dnsDomain}` : `${clusterName.toLowerCase()}.nats.internal`;
}

/** The network of an interface address: "10.44.0.1/24" -> "10.44.0.0/24". */
export function wgSubnet(interfaceAddress: string): string {
    const { base, prefix } = ipv4Network(interfaceAddress);
    return `${intToIpv4(base)}/${prefix}`;
}

export interface MeshTopology {
    /** The WireGuard subnet every member lives in, e.g. 10.44.0.0/24. */
    subnet: string;
    hub: {
        /** wg0 address with prefix, e.g. 10.44.0.1/24 (meshstack:wgCacheAddress). */
        interfaceAddress: string;
        /** Without prefix. */
        address: string;
    };
    clusterName: string;
    /** The name every data-plane certificate carries (natsServiceName). */
    natsServiceName: string;
    /** Node i at index i. */
    nats: NatsNode[];
}

export interface MeshTopologyInput {
    hubInterfaceAddress: string;
    natsNodeCount: number;
    clusterName: string;
    dnsDomain?: string;
    ports?: NatsPorts;
}

export function planMeshTopology(input: MeshTopologyInput): PlanResult<MeshTopology> {
    const addresses = natsWgAddressPlan(input.hubInterfaceAddress, input.natsNodeCount);
    if (!addresses.ok) return { ok: false, error: `meshstack:wgCacheAddress ${input.hubInterfaceAddress}: ${addresses.error}` };
    const nats = addresses.value.map((wgAddress, index) => {
        const hostname = natsHostname(input.clusterName, index);
        return { index, hostname, dnsName: input.dnsDomain ? `${hostname}.${input.dnsDomain}` : undefined, wgAddress, ports: input.ports ?? NATS_DEFAULT_PORTS };
    });
    return {
        ok: true,
        value: {
            subnet: wgSubnet(input.hubInterfaceAddress),
            hub: { interfaceAddress: input.hubInterfaceAddress, address: input.hubInterfaceAddress.split("/")[0] },
            clusterName: input.clusterName,
            natsServiceName: natsServiceName(input.clusterName, input.dnsDomain),
            nats,
        },
    };
}

/** planMeshTopology for a config that passed validation; a failure here is a bug, named as such. */
export function meshTopology(input: MeshTopologyInput): MeshTopology {
    const plan = planMeshTopology(input);
    if (!plan.ok) throw new Error(`${plan.error} (config validation should have refused this)`);
    return plan.value;
}
