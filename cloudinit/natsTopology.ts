/**
 * Who is who in a NATS cluster, as data: node names, WireGuard addresses,
 * ports, and the certificate profiles (subject, SANs, key usages) every node
 * gets. The component feeds these profiles to @pulumi/tls and the tests feed
 * the very same profiles to openssl, so a test certificate can only differ
 * from a deployed one by its key material.
 */
import { natsWgAddressPlan } from "../lib/topology";

export interface NatsPorts {
    /** Data plane (clients, the deployer's KV provider). */
    client: number;
    /** Server-to-server routes; bound to the WireGuard address. */
    route: number;
    /** HTTP monitoring (/healthz, /routez, /jsz); bound to localhost. */
    monitor: number;
}

export const NATS_DEFAULT_PORTS: NatsPorts = { client: 4222, route: 6222, monitor: 8222 };

export { NATS_FIRST_WG_HOST } from "../lib/topology";

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

/** WireGuard addresses of the NATS nodes (see natsWgAddressPlan); throws naming the config key. */
export function natsWgAddresses(cacheInterfaceAddress: string, nodeCount: number): string[] {
    const plan = natsWgAddressPlan(cacheInterfaceAddress, nodeCount);
    if (!plan.ok) throw new Error(`meshstack:wgCacheAddress ${cacheInterfaceAddress}: ${plan.error}`);
    return plan.value;
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

export function natsNodes(options: { clusterName: string; wgAddresses: string[]; dnsDomain?: string; ports?: NatsPorts }): NatsNode[] {
    return options.wgAddresses.map((wgAddress, index) => {
        const hostname = natsHostname(options.clusterName, index);
        return {
            index,
            hostname,
            dnsName: options.dnsDomain ? `${hostname}.${options.dnsDomain}` : undefined,
            wgAddress,
            ports: options.ports ?? NATS_DEFAULT_PORTS,
        };
    });
}

/** Key usages with the names @pulumi/tls uses (openssl names in OPENSSL_USAGE). */
export type CertUse = "digital_signature" | "cert_signing" | "crl_signing" | "server_auth" | "client_auth";

export interface CertProfile {
    commonName: string;
    organization: string;
    dnsNames: string[];
    ipAddresses: string[];
    uses: CertUse[];
    isCa: boolean;
    validityHours: number;
}

/** ECDSA P-256 for every key: small certificates keep user-data well under the Metadata limit. */
export const NATS_KEY = { algorithm: "ECDSA", ecdsaCurve: "P256" } as const;
export const NATS_CA_VALIDITY_HOURS = 10 * 365 * 24;
export const NATS_LEAF_VALIDITY_HOURS = 2 * 365 * 24;
/** Leaf certificates are re-issued (and nodes replaced) this long before they expire. */
export const NATS_LEAF_EARLY_RENEWAL_HOURS = 30 * 24;

const ORGANIZATION = "meshstack";

/** Signs route certificates only: a client certificate can never pass route verification. */
export function natsRouteCaProfile(clusterName: string): CertProfile {
    return {
        commonName: `${clusterName} NATS route CA`, organization: ORGANIZATION, dnsNames: [], ipAddresses: [],
        uses: ["cert_signing", "crl_signing", "digital_signature"], isCa: true, validityHours: NATS_CA_VALIDITY_HOURS,
    };
}

/** Signs data-plane server certificates and client certificates (when no existing CA is supplied). */
export function natsClientCaProfile(clusterName: string): CertProfile {
    return {
        commonName: `${clusterName} NATS client CA`, organization: ORGANIZATION, dnsNames: [], ipAddresses: [],
        uses: ["cert_signing", "crl_signing", "digital_signature"], isCa: true, validityHours: NATS_CA_VALIDITY_HOURS,
    };
}

function nodeDnsNames(node: NatsNode): string[] {
    return [node.hostname, ...(node.dnsName ? [node.dnsName] : [])];
}

/**
 * Route certificate: a route is mutual TLS, each side both dials and
 * accepts, so serverAuth and clientAuth. Routes dial WireGuard addresses,
 * so that address is the SAN that gets verified.
 */
export function natsRouteCertProfile(node: NatsNode): CertProfile {
    return {
        commonName: node.hostname, organization: ORGANIZATION, dnsNames: nodeDnsNames(node), ipAddresses: [node.wgAddress],
        uses: ["digital_signature", "server_auth", "client_auth"], isCa: false, validityHours: NATS_LEAF_VALIDITY_HOURS,
    };
}

/** Data-plane server certificate, signed by the client CA. */
export function natsServerCertProfile(node: NatsNode, serviceName: string): CertProfile {
    return {
        commonName: node.hostname, organization: ORGANIZATION, dnsNames: [...nodeDnsNames(node), serviceName], ipAddresses: [node.wgAddress],
        uses: ["digital_signature", "server_auth"], isCa: false, validityHours: NATS_LEAF_VALIDITY_HOURS,
    };
}

/** A client identity (the deployer's, or an application's), signed by the client CA. */
export function natsClientCertProfile(commonName: string): CertProfile {
    return {
        commonName, organization: ORGANIZATION, dnsNames: [], ipAddresses: [],
        uses: ["digital_signature", "client_auth"], isCa: false, validityHours: NATS_LEAF_VALIDITY_HOURS,
    };
}

export const OPENSSL_USAGE: Record<CertUse, { keyUsage?: string; extendedKeyUsage?: string }> = {
    digital_signature: { keyUsage: "digitalSignature" },
    cert_signing: { keyUsage: "keyCertSign" },
    crl_signing: { keyUsage: "cRLSign" },
    server_auth: { extendedKeyUsage: "serverAuth" },
    client_auth: { extendedKeyUsage: "clientAuth" },
};

/** The profile as an openssl x509v3 extension section (for tests and manual checks). */
export function opensslExtensions(profile: CertProfile): string {
    const keyUsage = profile.uses.map((u) => OPENSSL_USAGE[u].keyUsage).filter(Boolean);
    const extendedKeyUsage = profile.uses.map((u) => OPENSSL_USAGE[u].extendedKeyUsage).filter(Boolean);
    const san = [...profile.dnsNames.map((d) => `DNS:${d}`), ...profile.ipAddresses.map((ip) => `IP:${ip}`)];
    return [
        `basicConstraints = critical, CA:${profile.isCa ? "TRUE" : "FALSE"}`,
        `keyUsage = critical, ${keyUsage.join(", ")}`,
        ...(extendedKeyUsage.length ? [`extendedKeyUsage = ${extendedKeyUsage.join(", ")}`] : []),
        ...(san.length ? [`subjectAltName = ${san.join(", ")}`] : []),
        "subjectKeyIdentifier = hash",
        ...(profile.isCa ? [] : ["authorityKeyIdentifier = keyid"]),
    ].join("\n") + "\n";
}
