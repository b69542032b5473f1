import * as assert from "assert";
import { execFileSync } from "child_process";
import { FirewallRule, NFT_TABLE, nftFirewallScript, nftVmChains } from "../../box/network";
import { natsFirewallInbounds } from "../../components/nats/firewall";
import { wgCacheInboundRules } from "../../components/wgCache";

/** The rules as the provider receives them: resolved plain values. */
const plain = (rules: unknown): FirewallRule[] => JSON.parse(JSON.stringify(rules));
const wgCacheFirewall = { inboundPolicy: "DROP", outboundPolicy: "ACCEPT", inbounds: plain(wgCacheInboundRules(51820, ["198.51.100.1/32"])) };

describe("box firewalls: Linode Firewall rules as nftables chains", () => {
    it("admits WireGuard from anywhere and SSH from the break-glass source only, then drops (stateful)", () => {
        const { inbound, outbound } = nftVmChains("hub", wgCacheFirewall);
        assert.deepStrictEqual(inbound, [
            "ct state established,related accept",
            "ct state invalid drop",
            "udp dport { 51820 } accept",
            "ip saddr { 198.51.100.1/32 } tcp dport { 22 } accept",
            "drop",
        ]);
        assert.deepStrictEqual(outbound, ["ct state established,related accept", "accept"]);
    });

    it("keeps the NATS route port to the WireGuard subnet and the client port to its CIDRs", () => {
        const { inbound } = nftVmChains("nats", { inboundPolicy: "DROP", outboundPolicy: "ACCEPT", inbounds: plain(natsFirewallInbounds({ clientCidrs: ["198.51.100.1/32"], wgSubnet: "10.44.0.0/24", sshCidrs: [] })) });
        assert.ok(inbound.includes("ip saddr { 198.51.100.1/32 } tcp dport { 4222 } accept"));
        assert.ok(inbound.includes("ip saddr { 10.44.0.0/24 } tcp dport { 6222 } accept"));
        assert.strictEqual(inbound[inbound.length - 1], "drop");
    });

    it("refuses what Linode would refuse instead of guessing", () => {
        assert.throws(() => nftVmChains("x", { inboundPolicy: "REJECT", outboundPolicy: "ACCEPT" }), /inbound policy: action "REJECT" is not ACCEPT or DROP/);
        assert.throws(() => nftVmChains("x", { inboundPolicy: "DROP", outboundPolicy: "ACCEPT", inbounds: [{ action: "ACCEPT", protocol: "GRE", ipv4s: ["0.0.0.0/0"] }] }), /protocol "GRE"/);
    });

    it("is a ruleset nft itself accepts (checked, not applied)", () => {
        const script = `table inet ${NFT_TABLE} {\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n  }\n}\n${nftFirewallScript("wg-cache-node-instance", "mbxt0", wgCacheFirewall)}`;
        execFileSync("nft", ["--check", "-f", "-"], { input: script, stdio: ["pipe", "pipe", "pipe"] });
    });
});
