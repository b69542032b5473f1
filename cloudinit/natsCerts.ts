/**
 * The certificate profiles (subject, SANs, key usages) every NATS node and
 * CA gets, as data. The component feeds these profiles to @pulumi/tls and
 * the tests feed the very same profiles to openssl, so a test certificate
 * can only differ from a deployed one by its key material.
 */
import { NatsNode } from "../lib/topology";

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
/** Leaf certificates are re-issued this long before they expire; nodes reload them through the agent. */
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

/**
 * The profile's subject and names as an openssl req config: what a node
 * feeds `openssl req -new` to make its certificate request. @pulumi/tls
 * signs a request with the subject and SANs it carries, and the key usages
 * the deploy gives it.
 */
export function opensslRequestConfig(profile: Pick<CertProfile, "commonName" | "organization" | "dnsNames" | "ipAddresses">): string {
    const plain = (value: string, what: string) => {
        if (!/^[A-Za-z0-9 ._:-]+$/.test(value)) throw new Error(`${what} ${JSON.stringify(value)} cannot go into an openssl config unescaped; allowed: letters, digits, space and . _ : -`);
        return value;
    };
    const san = [...profile.dnsNames.map((d) => `DNS:${plain(d, "DNS name")}`), ...profile.ipAddresses.map((ip) => `IP:${plain(ip, "IP address")}`)];
    return [
        "[req]",
        "prompt = no",
        "distinguished_name = dn",
        ...(san.length ? ["req_extensions = ext"] : []),
        "[dn]",
        `O = ${plain(profile.organization, "organization")}`,
        `CN = ${plain(profile.commonName, "common name")}`,
        ...(san.length ? ["[ext]", `subjectAltName = ${san.join(", ")}`] : []),
        "",
    ].join("\n");
}
