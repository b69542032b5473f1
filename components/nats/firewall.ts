import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import { linodeTags } from "../../lib/environments";
import { cidrsByFamily } from "../../lib/ip";
import { firewallLabel, NamingContext } from "../../lib/naming";
import { NATS_DEFAULT_PORTS, NATS_WG_LISTEN_PORT } from "../../lib/topology";

/**
 * Inbound rules: WireGuard from anywhere (the nodes dial each other
 * directly, and WireGuard answers no packet without a peer's key), the
 * client port from the configured sources, the route port from the
 * WireGuard subnet only, SSH for break-glass; everything else (monitoring
 * included) is dropped by the policy.
 */
export function natsFirewallInbounds(input: { clientCidrs: string[]; wgSubnet: string; sshCidrs: string[] }): linode.types.input.FirewallInbound[] {
    const rule = (label: string, port: number, cidrs: string[]) => ({ label, action: "ACCEPT", protocol: "TCP", ports: String(port), ...cidrsByFamily(cidrs) });
    return [
        { label: "wireguard", action: "ACCEPT", protocol: "UDP", ports: String(NATS_WG_LISTEN_PORT), ipv4s: ["0.0.0.0/0"], ipv6s: ["::/0"] },
        ...(input.clientCidrs.length ? [rule("nats-client", NATS_DEFAULT_PORTS.client, input.clientCidrs)] : []),
        rule("nats-route-wg", NATS_DEFAULT_PORTS.route, [input.wgSubnet]),
        ...(input.sshCidrs.length ? [rule("ssh-break-glass", 22, input.sshCidrs)] : []),
    ];
}

export interface NatsFirewallInput {
    naming: NamingContext;
    clientCidrs: string[];
    wgSubnet: string;
    sshCidrs: string[];
    /** Linode tags besides `meshstack` and the stack name. */
    tags: string[];
}

/** The cluster's firewall; its id, for every node to attach at creation. */
export function natsFirewall(parent: pulumi.Resource, name: string, input: NatsFirewallInput): pulumi.Output<number> {
    const firewall = new linode.Firewall(`${name}-firewall`, {
        label: firewallLabel(input.naming, `${name}-fw`),
        inboundPolicy: "DROP",
        outboundPolicy: "ACCEPT",
        inbounds: natsFirewallInbounds({ clientCidrs: input.clientCidrs, wgSubnet: input.wgSubnet, sshCidrs: input.sshCidrs }),
        tags: linodeTags(["meshstack", input.naming.stack, ...input.tags]),
    }, { parent });
    return firewall.id.apply(Number);
}
