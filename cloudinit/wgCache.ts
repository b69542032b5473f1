/**
 * First-boot configuration of the WireGuard cache node, the hub: the
 * shared first boot (cloudinit/nodeBootstrap.ts: key born on the node, wg0
 * up, public key published) plus what only the hub does, forwarding on wg0
 * between the mesh's members and nothing else, and the agent that keeps
 * its peer set (NATS nodes, operators) current without replacing it.
 */
import { stringify } from "yaml";
import { AgentFile } from "./agent";
import { metadataGuardCloudConfig } from "./metadataGuard";
import { NODE_BOOTSTRAP_SCRIPT_PATH, renderNodeBootstrapScript, wgInterfaceSection } from "./nodeBootstrap";
import { AGENT_TIMER_NAME } from "./agent/layout";
import { renderPeer, WG_INTERFACE } from "./wgMesh";
import { WG_PERSISTENT_KEEPALIVE_SECONDS } from "../lib/meshPeers";

/** Turns on forwarding for wg0 alone, so members reach each other through the hub. */
export const WG_HUB_SYSCTL_PATH = "/etc/sysctl.d/99-meshstack-wg.conf";
/** Priorities of the two policy-routing rules that keep forwarded traffic inside the subnet. */
export const WG_HUB_RULE_PRIORITIES = [31000, 31001] as const;

export interface WgHubParams {
    /** The hub's name in the runtime channel. */
    node: string;
    /** Presigned PUT URL of the published material. A credential: never logged. */
    publishPutUrl: string;
    /** UDP port wg0 listens on. */
    listenPort: number;
    /** wg0 address with prefix, e.g. 10.44.0.1/24. */
    address: string;
    /** The mesh subnet (MeshTopology.subnet), e.g. 10.44.0.0/24. */
    subnet: string;
}

/**
 * Members reach each other through this node, so it forwards, but on wg0
 * alone: the global ip_forward stays off and nothing that arrives on the
 * public interface is ever routed (a neighbour could otherwise hand it
 * packets for the subnet and have them encrypted to a member). wg0 does
 * not exist at boot, so its PostUp applies the drop-in.
 */
export function renderHubSysctl(): string {
    return `# meshstack WireGuard hub (rendered by meshstack): forward between members, on ${WG_INTERFACE} only.
net.ipv4.conf.${WG_INTERFACE}.forwarding = 1
# The kernel sends a redirect unless both all and ${WG_INTERFACE} say no; this node
# forwards nowhere else, so turning off all costs nothing.
net.ipv4.conf.all.send_redirects = 0
net.ipv4.conf.${WG_INTERFACE}.send_redirects = 0
`;
}

/** The hub's [Interface]: what arrives on wg0 is routed back into the subnet or refused. */
export function hubInterfaceSection(params: Pick<WgHubParams, "address" | "listenPort" | "subnet">): string {
    const [ruleInSubnet, ruleElse] = WG_HUB_RULE_PRIORITIES;
    return wgInterfaceSection({
        address: params.address,
        listenPort: params.listenPort,
        extra: [
            `PostUp = sysctl -q -p ${WG_HUB_SYSCTL_PATH}`,
            `PostUp = ip -4 rule add iif %i to ${params.subnet} lookup main pref ${ruleInSubnet}`,
            `PostUp = ip -4 rule add iif %i unreachable pref ${ruleElse}`,
            `PostDown = ip -4 rule del pref ${ruleInSubnet}`,
            `PostDown = ip -4 rule del pref ${ruleElse}`,
        ],
    });
}

/** The hub's first-boot script. */
export function renderWgBootstrapScript(params: WgHubParams): string {
    return renderNodeBootstrapScript({
        ...params,
        interfaceSection: hubInterfaceSection(params),
        extraFiles: [{ path: WG_HUB_SYSCTL_PATH, content: renderHubSysctl() }],
    });
}

/** The hub's cloud-config: the metadata guard, the first boot, and the agent. */
export function renderWgCacheCloudConfig(params: WgHubParams, agent: AgentFile[]): string {
    const guard = metadataGuardCloudConfig();
    const document = {
        write_files: [
            { path: NODE_BOOTSTRAP_SCRIPT_PATH, owner: "root:root", permissions: "0700", content: renderWgBootstrapScript(params) },
            ...agent.map((f) => ({ path: f.path, owner: "root:root", permissions: f.permissions, content: f.content })),
            ...guard.files,
        ],
        packages: guard.packages,
        runcmd: [...guard.runcmd, [NODE_BOOTSTRAP_SCRIPT_PATH], ["systemctl", "enable", "--now", AGENT_TIMER_NAME]],
    };
    return `#cloud-config\n${stringify(document, { lineWidth: 0 })}`;
}

export interface PeerSectionParams {
    /** Shown as a comment so an operator knows which node the section is for. */
    name: string;
    publicKey: string;
    /** ip:port */
    endpoint: string;
    allowedIps: string;
}

/** A wg-quick `[Peer]` section an operator pastes into their own config. */
export function renderPeerSection(params: PeerSectionParams): string {
    return renderPeer({ comment: params.name, publicKey: params.publicKey, endpoint: params.endpoint, allowedIps: params.allowedIps, keepaliveSeconds: WG_PERSISTENT_KEEPALIVE_SECONDS });
}
