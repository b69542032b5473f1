/**
 * IP address and CIDR arithmetic, in one place: config validation, the
 * WireGuard address plan, firewall rules and public-endpoint selection all
 * parse addresses the same way, so a value the config accepts is a value
 * every consumer understands.
 */

export function isIpv4(value: string): boolean {
    const parts = value.split(".");
    return parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

/**
 * RFC 4291 text forms: up to eight groups of 1-4 hex digits, at most one
 * "::" standing for one or more zero groups, optionally ending in a dotted
 * IPv4 address that counts as two groups.
 */
export function isIpv6(value: string): boolean {
    if (!/^[0-9a-fA-F:.]+$/.test(value) || !value.includes(":")) return false;
    const halves = value.split("::");
    if (halves.length > 2) return false;
    const groupsOf = (text: string): string[] | undefined => (text === "" ? [] : text.split(":"));
    const head = groupsOf(halves[0]);
    const tail = halves.length === 2 ? groupsOf(halves[1]) : [];
    if (!head || !tail) return false;
    const groups = [...head, ...tail];
    let count = groups.length;
    const last = groups[groups.length - 1];
    if (last !== undefined && last.includes(".")) {
        if (!isIpv4(last)) return false;
        groups.pop();
        count += 1;
    }
    if (!groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return false;
    return halves.length === 2 ? count <= 7 : count === 8;
}

/** An IPv4 or IPv6 CIDR with a prefix length valid for its family. */
export function isCidr(value: string): boolean {
    const [address, prefix, ...rest] = value.split("/");
    if (rest.length || prefix === undefined || !/^(0|[1-9][0-9]{0,2})$/.test(prefix)) return false;
    const bits = Number(prefix);
    if (isIpv4(address)) return bits <= 32;
    return isIpv6(address) && bits <= 128;
}

export function isIpv4Cidr(value: string): boolean {
    return isCidr(value) && isIpv4(value.split("/")[0]);
}

export function ipv4ToInt(address: string): number {
    return address.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function intToIpv4(value: number): string {
    return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

/** The IPv4 network an address with prefix belongs to, as numbers. */
export function ipv4Network(cidr: string): { base: number; size: number; prefix: number } {
    const [address, prefix] = cidr.split("/");
    const size = 2 ** (32 - Number(prefix));
    return { base: Math.floor(ipv4ToInt(address) / size) * size, size, prefix: Number(prefix) };
}

export function ipv4InCidr(address: string, cidr: string): boolean {
    const { base, size } = ipv4Network(cidr);
    return isIpv4(address) && ipv4ToInt(address) >= base && ipv4ToInt(address) < base + size;
}

/** Whether a CIDR admits every address of its family (0.0.0.0/0, ::/0). */
export function isWholeInternet(cidr: string): boolean {
    return cidr.endsWith("/0");
}

/** Splits CIDRs into the ipv4s/ipv6s lists Linode firewall rules take; empty families are omitted. */
export function cidrsByFamily(cidrs: readonly string[]): { ipv4s?: string[]; ipv6s?: string[] } {
    const ipv4s = cidrs.filter((c) => isIpv4Cidr(c));
    const ipv6s = cidrs.filter((c) => isCidr(c) && !isIpv4Cidr(c));
    return { ...(ipv4s.length ? { ipv4s } : {}), ...(ipv6s.length ? { ipv6s } : {}) };
}
