/**
 * Public WireGuard endpoint of a Linode instance. Linode's `ipv4s` lists the
 * public address next to private (192.168.128.0/17) and VPC/NAT addresses in
 * no documented order, and a peer given a private address never completes a
 * handshake, silently. So the address is classified, not taken by position.
 */
import { ipv4InCidr, isIpv4 } from "./ip";
import { WG_LISTEN_PORT_MAX, WG_LISTEN_PORT_MIN } from "./limits";

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

/** Why an address cannot serve as a public endpoint, or undefined when it can. */
export function nonPublicReason(address: string): string | undefined {
    if (!isIpv4(address)) return "not an IPv4 address";
    const range = NON_PUBLIC_IPV4_RANGES.find((r) => ipv4InCidr(address, r.cidr));
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
    if (!Number.isInteger(listenPort) || listenPort < WG_LISTEN_PORT_MIN || listenPort > WG_LISTEN_PORT_MAX) {
        throw new Error(`listen port ${listenPort} is not allowed; allowed: an integer from ${WG_LISTEN_PORT_MIN} to ${WG_LISTEN_PORT_MAX} (meshstack:wgListenPort)`);
    }
    return `${selectPublicIpv4(ipv4s, primary)}:${listenPort}`;
}
