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

/** The 128-bit value of an IPv6 address in any text form isIpv6 accepts. */
export function ipv6ToBigInt(address: string): bigint {
    let text = address;
    const lastColon = text.lastIndexOf(":");
    const tail = text.slice(lastColon + 1);
    if (tail.includes(".")) {
        // A trailing dotted IPv4 address stands for the last two groups.
        const v4 = ipv4ToInt(tail);
        text = `${text.slice(0, lastColon + 1)}${Math.floor(v4 / 65536).toString(16)}:${(v4 % 65536).toString(16)}`;
    }
    const [head, rest] = text.split("::");
    const headGroups = head ? head.split(":") : [];
    const tailGroups = rest ? rest.split(":") : [];
    const groups = rest === undefined ? headGroups : [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill("0"), ...tailGroups];
    return groups.reduce((acc, g) => (acc << 16n) + BigInt(parseInt(g, 16)), 0n);
}

/** RFC 5952 text of a 128-bit value: lowercase, no leading zeros, the longest run of two or more zero groups as "::". */
export function bigIntToIpv6(value: bigint): string {
    const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(16 * (7 - i))) & 0xffffn));
    let best = { start: -1, length: 0 };
    for (let i = 0; i < 8; ) {
        if (groups[i] !== 0) { i++; continue; }
        let j = i;
        while (j < 8 && groups[j] === 0) j++;
        if (j - i > best.length) best = { start: i, length: j - i };
        i = j;
    }
    const hex = groups.map((g) => g.toString(16));
    if (best.length < 2) return hex.join(":");
    return `${hex.slice(0, best.start).join(":")}::${hex.slice(best.start + best.length).join(":")}`;
}

/**
 * A CIDR's network in canonical form, and whether the address as written
 * had host bits set. A firewall takes `10.0.0.1/8` as all of 10.0.0.0/8, so
 * an address with host bits almost always meant the one host (/32).
 */
export function cidrNetwork(cidr: string): { network: string; hostBitsSet: boolean } {
    const [address, prefixText] = cidr.split("/");
    const prefix = Number(prefixText);
    if (isIpv4(address)) {
        const { base } = ipv4Network(cidr);
        return { network: `${intToIpv4(base)}/${prefix}`, hostBitsSet: base !== ipv4ToInt(address) };
    }
    const value = ipv6ToBigInt(address);
    const hostMask = (1n << BigInt(128 - prefix)) - 1n;
    const base = value & ~hostMask;
    return { network: `${bigIntToIpv6(base)}/${prefix}`, hostBitsSet: base !== value };
}
