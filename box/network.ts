/**
 * The box's underlay: the network Linode's public addresses live on, here a
 * Linux bridge inside a network namespace of its own, so the host's own
 * network is left alone except for one veth end (the host's address on the
 * underlay) and it all disappears with the namespace.
 *
 * Each VM's tap is moved into the namespace and joins the bridge. Bridged
 * IPv4 goes through the namespace's nftables forward hook
 * (bridge-nf-call-iptables, per namespace), where each VM has a chain built
 * from its Linode Firewall: the rules decide what reaches the VM, stateful
 * (replies to what the VM sent are let back in, as Linode's firewall does).
 * A firewall rule that blocks WireGuard or NATS routes therefore breaks the
 * box the way it would break a real deploy.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";

export const UNDERLAY = {
    namespace: "meshstack-box",
    bridge: "mbxbr0",
    hostVeth: "mbxhost",
    namespaceVeth: "mbxns",
    /** TEST-NET-2 (RFC 5737): not private, so the program takes it for a public address, and never routed anywhere. */
    prefix: "198.51.100",
    prefixLength: 24,
    hostAddress: "198.51.100.1",
    /** VM n gets .firstVmHost+n. */
    firstVmHost: 10,
} as const;

export const NFT_TABLE = "meshstack_box";
const TABLE = NFT_TABLE;

function run(cmd: string, args: string[], input?: string): string {
    try {
        return execFileSync(cmd, args, { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"] });
    } catch (err) {
        const e = err as { stderr?: string; status?: number };
        throw new Error(`${cmd} ${args.join(" ")} failed (exit ${e.status}): ${(e.stderr ?? "").trim()}`);
    }
}

function inNamespace(cmd: string, args: string[], input?: string): string {
    return run("ip", ["netns", "exec", UNDERLAY.namespace, cmd, ...args], input);
}

export function vmUnderlayAddress(index: number): string {
    return `${UNDERLAY.prefix}.${UNDERLAY.firstVmHost + index}`;
}

export function namespaceExists(): boolean {
    return fs.existsSync(`/run/netns/${UNDERLAY.namespace}`);
}

/** Creates namespace, bridge, veth pair and the empty filter table. Fails when a box network already exists. */
export function createUnderlay(): void {
    if (namespaceExists()) throw new Error(`network namespace ${UNDERLAY.namespace} exists: another box is up (npm run box:down removes it)`);
    run("ip", ["netns", "add", UNDERLAY.namespace]);
    const ns = ["-n", UNDERLAY.namespace];
    run("ip", [...ns, "link", "add", UNDERLAY.bridge, "type", "bridge"]);
    run("ip", [...ns, "link", "set", "lo", "up"]);
    run("ip", [...ns, "link", "set", UNDERLAY.bridge, "up"]);
    run("ip", ["link", "add", UNDERLAY.hostVeth, "type", "veth", "peer", "name", UNDERLAY.namespaceVeth, "netns", UNDERLAY.namespace]);
    run("ip", [...ns, "link", "set", UNDERLAY.namespaceVeth, "master", UNDERLAY.bridge, "up"]);
    run("ip", ["addr", "add", `${UNDERLAY.hostAddress}/${UNDERLAY.prefixLength}`, "dev", UNDERLAY.hostVeth]);
    run("ip", ["link", "set", UNDERLAY.hostVeth, "up"]);
    inNamespace("sysctl", ["-q", "-w", "net.bridge.bridge-nf-call-iptables=1"]);
    inNamespace("nft", ["-f", "-"], `table inet ${TABLE} {
  chain forward {
    type filter hook forward priority 0; policy accept;
  }
}
`);
}

/** Removes everything createUnderlay made; safe to call when (some of) it is gone. */
export function removeUnderlay(): void {
    if (namespaceExists()) run("ip", ["netns", "delete", UNDERLAY.namespace]);
    try {
        run("ip", ["link", "delete", UNDERLAY.hostVeth]);
    } catch {
        // Deleting the namespace took the pair with it.
    }
}

/** Moves a VM's tap (QEMU created it in the host namespace) onto the bridge. */
export function attachTap(ifname: string): void {
    run("ip", ["link", "set", ifname, "netns", UNDERLAY.namespace]);
    run("ip", ["-n", UNDERLAY.namespace, "link", "set", ifname, "master", UNDERLAY.bridge, "up"]);
}

/** A Linode Firewall rule as @pulumi/linode takes it. */
export interface FirewallRule {
    label?: string;
    action: string;
    protocol: string;
    ports?: string;
    ipv4s?: string[];
    ipv6s?: string[];
}

export interface FirewallSpec {
    inboundPolicy: string;
    inbounds?: FirewallRule[];
    outboundPolicy: string;
    outbounds?: FirewallRule[];
}

function verdict(action: string, where: string): string {
    const a = action.toUpperCase();
    if (a !== "ACCEPT" && a !== "DROP") throw new Error(`${where}: action ${JSON.stringify(action)} is not ACCEPT or DROP`);
    return a === "ACCEPT" ? "accept" : "drop";
}

/** nftables statements of one Linode rule, matched against the remote side (`saddr` inbound, `daddr` outbound). */
export function nftRule(rule: FirewallRule, remote: "saddr" | "daddr", where: string): string[] {
    const protocol = rule.protocol.toUpperCase();
    const action = verdict(rule.action, where);
    const v4 = rule.ipv4s ?? [];
    if (v4.length === 0) return [];
    const addresses = v4.includes("0.0.0.0/0") ? "" : `ip ${remote} { ${v4.join(", ")} } `;
    if (protocol === "ICMP") return [`${addresses}meta l4proto icmp ${action}`];
    if (protocol !== "TCP" && protocol !== "UDP") throw new Error(`${where}: protocol ${JSON.stringify(rule.protocol)} is not TCP, UDP or ICMP`);
    const ports = rule.ports ? `${protocol.toLowerCase()} dport { ${rule.ports.split(",").map((p) => p.trim()).join(", ")} } ` : `meta l4proto ${protocol.toLowerCase()} `;
    return [`${addresses}${ports}${action}`];
}

/** The two chains of one VM: what may reach it and what it may send. IPv6 is not on the underlay. */
export function nftVmChains(chain: string, firewall: FirewallSpec | undefined): { inbound: string[]; outbound: string[] } {
    if (!firewall) return { inbound: ["accept"], outbound: ["accept"] };
    const inbound = [
        "ct state established,related accept",
        "ct state invalid drop",
        ...(firewall.inbounds ?? []).flatMap((r, i) => nftRule(r, "saddr", `${chain} inbound rule ${r.label ?? i}`)),
        verdict(firewall.inboundPolicy, `${chain} inbound policy`),
    ];
    const outbound = [
        "ct state established,related accept",
        ...(firewall.outbounds ?? []).flatMap((r, i) => nftRule(r, "daddr", `${chain} outbound rule ${r.label ?? i}`)),
        verdict(firewall.outboundPolicy, `${chain} outbound policy`),
    ];
    return { inbound, outbound };
}

/** The nftables script that puts a VM behind its firewall: traffic to and from its tap jumps to the VM's chains. */
export function nftFirewallScript(vmName: string, tap: string, firewall: FirewallSpec | undefined): string {
    const chain = vmName.replace(/[^A-Za-z0-9_]/g, "_");
    const { inbound, outbound } = nftVmChains(chain, firewall);
    const body = (name: string, statements: string[]) => `  chain ${name} {\n${statements.map((s) => `    ${s}\n`).join("")}  }\n`;
    return `table inet ${TABLE} {
${body(`${chain}_in`, inbound)}${body(`${chain}_out`, outbound)}}
add rule inet ${TABLE} forward oifname "${tap}" jump ${chain}_in
add rule inet ${TABLE} forward iifname "${tap}" jump ${chain}_out
`;
}

export function applyFirewall(vmName: string, tap: string, firewall: FirewallSpec | undefined): void {
    inNamespace("nft", ["-f", "-"], nftFirewallScript(vmName, tap, firewall));
}
