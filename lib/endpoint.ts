/**
 * Public WireGuard endpoint of a Linode instance. Linode's `ipv4s` lists the
 * public address next to private (192.168.128.0/17) and VPC/NAT addresses in
 * no documented order, and a peer given a private address never completes a
 * handshake, silently. So the address is classified, not taken by position.
 */
import { isIpv4 } from "./config";

/** Ranges a peer on the internet cannot reach, with the name shown in errors. */
const NON_PUBLIC_IPV4_RANGES: { cidr: string; why: string }[] = [
    { cidr: "0.0.0.0/8", why: "this-network" },
    { cidr: "10.0.0.0/8", why: "RFC 1918 private" },
    { cidr: "100.64.0.0/10", why: "carrier-grade NAT (RFC 6598)" },
    { cidr: "127.0.0.0/8", why: "loopback" },
    { cidr: "169.254.0.0/16", why: "link-local" },
    { cidr: "172.16.0.0/12", why: "RFC 1918 private" },
    { cidr: "192.168.0.0/16", why: "RFC 1918 private" },
    { cidr: "224.0.0.0/4", why: "multicast" },
    { cidr: "240.0.0.0/4", why: "reserved" },
];

function ipv4ToNumber(address: string): number {
    return address.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

function inCidr(address: string, cidr: string): boolean {
    const [network, prefix] = cidr.split("/");
    const bits = Number(prefix);
    const size = 2 ** (32 - bits);
    return Math.floor(ipv4ToNumber(address) / size) === Math.floor(ipv4ToNumber(network) / size);
}

/** Why an address cannot serve as a public endpoint, or undefined when it can. */
export function nonPublicReason(address: string): string | undefined {
    if (!isIpv4(address)) return "not an IPv4 address";
    const range = NON_PUBLIC_IPV4_RANGES.find((r) => inCidr(address, r.cidr));
    return range ? `${range.why} (${range.cidr})` : undefined;
}

/**
 * The instance's public IPv4. With several public addresses the primary one
 * (Linode's `ipAddress`) wins when given, else the first listed, so the
 * choice is stable across runs.
 */
export function selectPublicIpv4(ipv4s: readonly string[], primary?: string, purpose = "the WireGuard endpoint"): string {
    const publics = ipv4s.filter((a) => nonPublicReason(a) === undefined);
    if (primary !== undefined && publics.includes(primary)) return primary;
    if (publics.length > 0) return publics[0];
    const seen = ipv4s.length ? ipv4s.map((a) => `${a} (${nonPublicReason(a)})`).join(", ") : "none";
    throw new Error(
        `the instance has no public IPv4 address to use as ${purpose}; addresses seen: ${seen}. ` +
            "A peer outside the provider's network needs a public address: check that the instance has its public IPv4 (not only a VPC interface).",
    );
}

/** `ip:port` for a wg-quick `Endpoint =` line. */
export function publicEndpoint(ipv4s: readonly string[], listenPort: number, primary?: string): string {
    if (!Number.isInteger(listenPort) || listenPort < 1 || listenPort > 65535) {
        throw new Error(`listen port ${listenPort} is not a UDP port; allowed: an integer from 1 to 65535 (meshstack:wgListenPort)`);
    }
    return `${selectPublicIpv4(ipv4s, primary)}:${listenPort}`;
}

/** CIDRs split into a Linode firewall rule's ipv4s and ipv6s, omitting an empty family. */
export function cidrsByFamily(cidrs: string[]): { ipv4s?: string[]; ipv6s?: string[] } {
    const ipv4s = cidrs.filter((c) => isIpv4(c.split("/")[0]));
    const ipv6s = cidrs.filter((c) => !isIpv4(c.split("/")[0]));
    return { ...(ipv4s.length ? { ipv4s } : {}), ...(ipv6s.length ? { ipv6s } : {}) };
}
