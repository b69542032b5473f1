import * as assert from "assert";
import { nonPublicReason, publicEndpoint } from "../../lib/endpoint";

describe("public WireGuard endpoint selection", () => {
    const picks: { name: string; ipv4s: string[]; primary?: string; expected: string }[] = [
        { name: "private first, public second (Linode's usual order)", ipv4s: ["192.168.139.12", "172.105.4.7"], expected: "172.105.4.7:51820" },
        { name: "public first", ipv4s: ["172.105.4.7", "192.168.139.12"], expected: "172.105.4.7:51820" },
        { name: "10/8 VPC address next to the public one", ipv4s: ["10.0.0.5", "45.79.1.2"], expected: "45.79.1.2:51820" },
        { name: "172.16/12 edges are private, 172.32 is public", ipv4s: ["172.16.0.1", "172.31.255.254", "172.32.0.1"], expected: "172.32.0.1:51820" },
        { name: "carrier-grade NAT 100.64/10 is skipped, 100.128 is public", ipv4s: ["100.64.0.1", "100.127.255.254", "100.128.0.1"], expected: "100.128.0.1:51820" },
        { name: "link-local and loopback are skipped", ipv4s: ["169.254.1.1", "127.0.0.1", "198.51.100.20"], expected: "198.51.100.20:51820" },
        { name: "192.169 is public (only 192.168/16 is private)", ipv4s: ["192.168.255.255", "192.169.0.1"], expected: "192.169.0.1:51820" },
        { name: "several public: the primary wins", ipv4s: ["45.79.1.2", "45.79.1.3"], primary: "45.79.1.3", expected: "45.79.1.3:51820" },
        { name: "several public, no primary: the first listed", ipv4s: ["10.1.1.1", "45.79.1.2", "45.79.1.3"], expected: "45.79.1.2:51820" },
        { name: "a private primary is ignored", ipv4s: ["192.168.1.1", "45.79.1.2"], primary: "192.168.1.1", expected: "45.79.1.2:51820" },
        { name: "malformed entries are skipped", ipv4s: ["not-an-ip", "45.79.1.256", "45.79.1.2"], expected: "45.79.1.2:51820" },
    ];
    for (const c of picks) {
        it(`picks the public address: ${c.name}`, () => {
            assert.strictEqual(publicEndpoint(c.ipv4s, 51820, c.primary), c.expected);
        });
    }

    it("appends the configured listen port", () => {
        assert.strictEqual(publicEndpoint(["192.168.1.1", "45.79.1.2"], 51999), "45.79.1.2:51999");
    });

    const failures: { name: string; ipv4s: string[]; mentions: RegExp[] }[] = [
        { name: "only private and CGNAT addresses", ipv4s: ["192.168.139.12", "10.0.0.5", "100.100.1.1"], mentions: [/192\.168\.139\.12 \(RFC 1918/, /100\.100\.1\.1 \(carrier-grade NAT/] },
        { name: "only link-local and loopback", ipv4s: ["169.254.0.9", "127.0.0.53"], mentions: [/link-local/, /loopback/] },
        { name: "no addresses at all", ipv4s: [], mentions: [/addresses seen: none/] },
    ];
    for (const c of failures) {
        it(`fails clearly when there is no public address: ${c.name}`, () => {
            assert.throws(() => publicEndpoint(c.ipv4s, 51820), (err: Error) => {
                assert.match(err.message, /no public IPv4 address/);
                for (const m of c.mentions) assert.match(err.message, m);
                return true;
            });
        });
    }

    it("rejects a listen port outside 1-65535, naming the config key", () => {
        assert.throws(() => publicEndpoint(["45.79.1.2"], 70000), /meshstack:wgListenPort/);
    });

    it("says why an address is not public", () => {
        assert.deepStrictEqual(
            ["10.255.255.255", "100.63.255.255", "224.0.0.1", "8.8.8.8"].map(nonPublicReason),
            ["RFC 1918 private (10.0.0.0/8)", undefined, "multicast (224.0.0.0/4)", undefined],
        );
    });
});
