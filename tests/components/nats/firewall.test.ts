import * as assert from "assert";
import { natsFirewallInbounds } from "../../../components/nats/firewall";

describe("natsFirewallInbounds", () => {
    const labels = (rules: { label?: unknown }[]) => rules.map((r) => r.label);

    it("opens WireGuard to everyone and the route port to the WireGuard subnet alone, whatever else is configured", () => {
        const rules = natsFirewallInbounds({ clientCidrs: [], wgSubnet: "10.44.0.0/24", sshCidrs: [] });
        assert.deepStrictEqual(rules, [
            { label: "wireguard", action: "ACCEPT", protocol: "UDP", ports: "51820", ipv4s: ["0.0.0.0/0"], ipv6s: ["::/0"] },
            { label: "nats-route-wg", action: "ACCEPT", protocol: "TCP", ports: "6222", ipv4s: ["10.44.0.0/24"] },
        ]);
    });

    it("adds the client port and break-glass SSH only for configured sources, each family in its own list", () => {
        const rules = natsFirewallInbounds({ clientCidrs: ["198.51.100.0/24", "2001:db8::/32"], wgSubnet: "10.44.0.0/24", sshCidrs: ["192.0.2.7/32"] });
        assert.deepStrictEqual(labels(rules), ["wireguard", "nats-client", "nats-route-wg", "ssh-break-glass"]);
        assert.deepStrictEqual(rules[1], { label: "nats-client", action: "ACCEPT", protocol: "TCP", ports: "4222", ipv4s: ["198.51.100.0/24"], ipv6s: ["2001:db8::/32"] });
        assert.deepStrictEqual(rules[3], { label: "ssh-break-glass", action: "ACCEPT", protocol: "TCP", ports: "22", ipv4s: ["192.0.2.7/32"] });
    });

    it("never opens the monitoring port", () => {
        const rules = natsFirewallInbounds({ clientCidrs: ["0.0.0.0/0"], wgSubnet: "10.44.0.0/24", sshCidrs: ["0.0.0.0/0"] });
        assert.ok(rules.every((r) => r.ports !== "8222"));
    });
});
