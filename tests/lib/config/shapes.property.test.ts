/**
 * Properties of the config checks that have a domain: CIDR host bits over
 * every address and prefix, private keys never echoed whatever their body,
 * and the clamped shape of a WireGuard private key over every 32 bytes.
 * Expectations are computed here from bits, not with lib/ip.ts's own helpers.
 */
import * as assert from "assert";
import fc from "fast-check";
import { formatConfigErrors, parseStackConfig, pemBlock, qualify } from "../../../lib/config";
import { bigIntToIpv6, cidrNetwork, ipv6ToBigInt } from "../../../lib/ip";
import { looksClamped } from "../../../lib/wgKey";

const RUNS = { numRuns: 300 };

function parse(values: Record<string, string>) {
    return parseStackConfig({ values: Object.fromEntries(Object.entries(values).map(([k, v]) => [qualify(k), v])), secretKeys: new Set() });
}

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
const groups = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 });

describe("CIDR host bits (properties)", () => {
    it("an IPv4 CIDR is accepted exactly when the bits past its prefix are zero", () => {
        fc.assert(fc.property(ipv4, fc.integer({ min: 0, max: 32 }), (octets, prefix) => {
            const value = octets.reduce((acc, o) => acc * 256 + o, 0);
            const hostBitsZero = prefix === 32 || value % 2 ** (32 - prefix) === 0;
            const result = parse({ breakGlassSshCidrs: JSON.stringify([`${octets.join(".")}/${prefix}`]) });
            assert.strictEqual(result.ok, hostBitsZero, result.ok ? "accepted" : formatConfigErrors(result.errors));
        }), RUNS);
    });

    it("a refused IPv4 CIDR's suggested network is accepted and holds the written address", () => {
        fc.assert(fc.property(ipv4, fc.integer({ min: 0, max: 31 }), (octets, prefix) => {
            const cidr = `${octets.join(".")}/${prefix}`;
            const result = parse({ breakGlassSshCidrs: JSON.stringify([cidr]) });
            fc.pre(!result.ok);
            const suggested = /would open all of (\S+);/.exec(result.ok ? "" : result.errors[0].message)?.[1];
            assert.ok(suggested, result.ok ? "" : result.errors[0].message);
            assert.ok(parse({ breakGlassSshCidrs: JSON.stringify([suggested]) }).ok, suggested);
            const base = suggested.split("/")[0].split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
            const value = octets.reduce((acc, o) => acc * 256 + o, 0);
            assert.ok(value >= base && value < base + 2 ** (32 - prefix), `${cidr} not in ${suggested}`);
        }), RUNS);
    });

    it("an IPv6 CIDR is accepted exactly when the bits past its prefix are zero, however it is written", () => {
        fc.assert(fc.property(groups, fc.integer({ min: 0, max: 128 }), fc.boolean(), (g, prefix, compress) => {
            const value = g.reduce((acc, x) => (acc << 16n) + BigInt(x), 0n);
            const hostBitsZero = value % (1n << BigInt(128 - prefix)) === 0n;
            const text = compress ? bigIntToIpv6(value) : g.map((x) => x.toString(16).padStart(4, "0")).join(":");
            const result = parse({ natsClientCidrs: JSON.stringify([`${text}/${prefix}`]) });
            assert.strictEqual(result.ok, hostBitsZero, `${text}/${prefix}: ${result.ok ? "accepted" : formatConfigErrors(result.errors)}`);
        }), RUNS);
    });

    it("IPv6 text round-trips through its value in the canonical form", () => {
        fc.assert(fc.property(groups, (g) => {
            const value = g.reduce((acc, x) => (acc << 16n) + BigInt(x), 0n);
            const text = bigIntToIpv6(value);
            assert.strictEqual(ipv6ToBigInt(text), value, text);
            assert.strictEqual(ipv6ToBigInt(g.map((x) => x.toString(16)).join(":")), value);
            assert.strictEqual(cidrNetwork(`${text}/128`).network, `${text}/128`);
        }), RUNS);
    });

    it("two spellings of one network are one entry: the second is refused as a repeat", () => {
        fc.assert(fc.property(groups, fc.integer({ min: 16, max: 128 }), (g, prefix) => {
            const value = g.reduce((acc, x) => (acc << 16n) + BigInt(x), 0n) & ~((1n << BigInt(128 - prefix)) - 1n);
            const canonical = bigIntToIpv6(value);
            const padded = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(16 * (7 - i))) & 0xffffn).toString(16).padStart(4, "0")).join(":");
            const result = parse({ breakGlassSshCidrs: JSON.stringify([`${canonical}/${prefix}`, `${padded}/${prefix}`]) });
            assert.ok(!result.ok);
            assert.match(result.errors[0].message, /item 1 .* repeats item 0/);
        }), RUNS);
    });
});

describe("private keys in the wrong key (properties)", () => {
    it("a refused private key's body never appears in the report, whatever the body and label", () => {
        const label = fc.constantFrom("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
        const body = fc.base64String({ minLength: 24, maxLength: 200 }).filter((b) => b.length >= 24);
        fc.assert(fc.property(label, body, fc.constantFrom("sshAuthorizedKeys", "natsClientCaCertPem", "proxmoxCaBundlePem", "region"), (l, b, key) => {
            const pem = pemBlock(l, b);
            const raw = key === "sshAuthorizedKeys" ? JSON.stringify([pem]) : pem;
            const result = parse({ [key]: raw });
            assert.ok(!result.ok);
            const report = formatConfigErrors(result.errors);
            assert.ok(!report.includes(b.slice(0, 16)), report);
            assert.match(report, /\[private key sha256:[0-9a-f]{12}\]/);
        }), RUNS);
    });
});

describe("the clamped shape of a WireGuard private key (properties)", () => {
    it("holds exactly when the first byte's low 3 bits are 0 and the last byte's top bits are 01", () => {
        fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
            const expected = (bytes[0] & 7) === 0 && (bytes[31] & 0xc0) === 0x40;
            assert.strictEqual(looksClamped(Buffer.from(bytes).toString("base64")), expected);
        }), RUNS);
    });

    it("holds for every key X25519 clamping made", () => {
        fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
            const clamped = Buffer.from(bytes);
            clamped[0] &= 248;
            clamped[31] = (clamped[31] & 127) | 64;
            assert.ok(looksClamped(clamped.toString("base64")));
        }), RUNS);
    });

    it("warns, never refuses, an operator peer whose key looks clamped", () => {
        fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
            const key = Buffer.from(bytes).toString("base64");
            fc.pre(key !== "A".repeat(43) + "=");
            const result = parse({ wgOperatorPeers: JSON.stringify([`ops ${key} 10.44.0.200`]) });
            assert.ok(result.ok, result.ok ? "" : formatConfigErrors(result.errors));
            assert.strictEqual(result.warnings.length, looksClamped(key) ? 1 : 0);
        }), RUNS);
    });
});
