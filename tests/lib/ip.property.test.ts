import * as assert from "assert";
import fc from "fast-check";
import * as net from "net";
import { cidrsByFamily, intToIpv4, ipv4InCidr, ipv4Network, ipv4ToInt, isCidr, isIpv4, isIpv4Cidr, isIpv6 } from "../../lib/ip";

const RUNS = { numRuns: 500 };
const address = fc.nat({ max: 2 ** 32 - 1 });
const prefix = fc.integer({ min: 0, max: 32 });

/** The network of `value/prefix` by bit arithmetic (BigInt), independent of lib/ip's division. */
function networkOf(value: number, bits: number): { base: bigint; last: bigint } {
    const hostBits = BigInt(32 - bits);
    const base = (BigInt(value) >> hostBits) << hostBits;
    return { base, last: base + (1n << hostBits) - 1n };
}

const hex = fc.constantFrom(..."0123456789abcdefABCDEF");
/** Mostly well-formed hex groups, sometimes empty or too long. */
const group = fc.oneof(
    { weight: 10, arbitrary: fc.string({ unit: hex, minLength: 1, maxLength: 4 }) },
    { weight: 1, arbitrary: fc.string({ unit: hex, minLength: 0, maxLength: 6 }) },
);
/** Text shaped like IPv6: up to nine groups, at most a few "::", maybe an embedded IPv4 tail, and the typos users make. */
const ipv6Like = fc.oneof(
    fc.record({
        head: fc.array(group, { maxLength: 5 }),
        tail: fc.array(group, { maxLength: 4 }),
        compressed: fc.oneof({ weight: 3, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.nat({ max: 2 }) }),
        ipv4: fc.option(fc.tuple(fc.oneof(fc.nat({ max: 255 }), fc.constantFrom(256, 300, "01")), fc.nat({ max: 255 }), fc.nat({ max: 255 }), fc.nat({ max: 255 })).map((o) => o.join(".")), { nil: undefined }),
    }).map(({ head, tail, compressed, ipv4 }) => {
        const groups = compressed === 0 ? [...head, ...tail].join(":") : head.join(":") + "::".repeat(compressed) + tail.join(":");
        return ipv4 === undefined ? groups : `${groups}${groups.endsWith(":") ? "" : ":"}${ipv4}`;
    }),
    fc.string({ unit: fc.constantFrom(..."0123456789abcdef:."), maxLength: 45 }),
);

describe("IPv4 and CIDR arithmetic (properties)", () => {
    it("round-trips every IPv4 address through its number", () => {
        fc.assert(fc.property(address, (value) => {
            const text = intToIpv4(value);
            assert.ok(isIpv4(text), text);
            assert.strictEqual(ipv4ToInt(text), value);
        }), RUNS);
    });

    it("reads a dotted quad as its four bytes, most significant first", () => {
        fc.assert(fc.property(fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)), (bytes) => {
            assert.strictEqual(ipv4ToInt(bytes.join(".")), ((bytes[0] * 256 + bytes[1]) * 256 + bytes[2]) * 256 + bytes[3]);
        }), RUNS);
    });

    it("accepts exactly the IPv4 text Node's net.isIPv4 accepts", () => {
        const dotted = fc.oneof(
            fc.tuple(fc.nat(400), fc.nat(400), fc.nat(400), fc.nat(400)).map((o) => o.join(".")),
            fc.string({ unit: fc.constantFrom(..."0123456789."), maxLength: 17 }),
        );
        fc.assert(fc.property(dotted, (text) => assert.strictEqual(isIpv4(text), net.isIPv4(text), text)), RUNS);
    });

    it("puts an address with prefix in the network that bit masking gives, of 2^(32-prefix) addresses", () => {
        fc.assert(fc.property(address, prefix, (value, bits) => {
            const network = ipv4Network(`${intToIpv4(value)}/${bits}`);
            const expected = networkOf(value, bits);
            assert.deepStrictEqual([BigInt(network.base), BigInt(network.base + network.size - 1), network.prefix], [expected.base, expected.last, bits]);
        }), RUNS);
    });

    it("counts an address inside a CIDR exactly when its network bits match", () => {
        fc.assert(fc.property(address, prefix, address, (cidrValue, bits, candidate) => {
            const { base, last } = networkOf(cidrValue, bits);
            const inside = BigInt(candidate) >= base && BigInt(candidate) <= last;
            assert.strictEqual(ipv4InCidr(intToIpv4(candidate), `${intToIpv4(cidrValue)}/${bits}`), inside);
        }), RUNS);
    });

    it("includes a network's first and last address and neither neighbour outside it", () => {
        fc.assert(fc.property(address, fc.integer({ min: 1, max: 32 }), (value, bits) => {
            const cidr = `${intToIpv4(value)}/${bits}`;
            const { base, last } = networkOf(value, bits);
            assert.ok(ipv4InCidr(intToIpv4(Number(base)), cidr) && ipv4InCidr(intToIpv4(Number(last)), cidr), cidr);
            if (base > 0n) assert.ok(!ipv4InCidr(intToIpv4(Number(base - 1n)), cidr), `${cidr} holds the address below it`);
            if (last < 2n ** 32n - 1n) assert.ok(!ipv4InCidr(intToIpv4(Number(last + 1n)), cidr), `${cidr} holds the address above it`);
        }), RUNS);
    });

    it("accepts IPv4 CIDRs with prefixes 0 to 32 only", () => {
        fc.assert(fc.property(address, fc.integer({ min: -1, max: 200 }), (value, bits) => {
            assert.strictEqual(isIpv4Cidr(`${intToIpv4(value)}/${bits}`), bits >= 0 && bits <= 32);
        }), RUNS);
    });
});

describe("firewall address lists (properties)", () => {
    it("files each CIDR of a mixed list under its own family, in order, and leaves out an empty family", () => {
        const v4 = fc.tuple(address, prefix).map(([value, bits]) => `${intToIpv4(value)}/${bits}`);
        const v6 = ipv6Like.filter((t) => net.isIPv6(t)).map((t) => `${t}/64`);
        fc.assert(fc.property(fc.array(fc.oneof(v4, v6), { maxLength: 6 }), (cidrs) => {
            const ipv4s = cidrs.filter((c) => net.isIPv4(c.split("/")[0]));
            const ipv6s = cidrs.filter((c) => net.isIPv6(c.split("/")[0]));
            assert.deepStrictEqual(cidrsByFamily(cidrs), { ...(ipv4s.length ? { ipv4s } : {}), ...(ipv6s.length ? { ipv6s } : {}) });
        }), RUNS);
    });
});

describe("IPv6 text (properties)", () => {
    it("accepts what Node's net.isIPv6 accepts and rejects what it rejects", () => {
        fc.assert(fc.property(ipv6Like, (text) => assert.strictEqual(isIpv6(text), net.isIPv6(text), text)), { numRuns: 2000 });
    });

    it("accepts IPv6 CIDRs with prefixes 0 to 128 only, and files them under ipv6s", () => {
        fc.assert(fc.property(ipv6Like.filter((t) => net.isIPv6(t)), fc.integer({ min: 0, max: 200 }), (text, bits) => {
            const cidr = `${text}/${bits}`;
            assert.strictEqual(isCidr(cidr), bits <= 128, cidr);
            if (bits <= 128) assert.deepStrictEqual(cidrsByFamily([cidr]), { ipv6s: [cidr] });
        }), RUNS);
    });
});
