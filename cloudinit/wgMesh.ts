/**
 * WireGuard basics every member's configuration shares: the interface, its
 * paths, and the wg-quick `[Peer]` section. Who peers with whom is decided
 * in lib/meshPeers.ts and reaches the nodes through the agent.
 */
export const WG_INTERFACE = "wg0";
/** The systemd unit that brings wg0 up from /etc/wireguard/wg0.conf. */
export const WG_QUICK_UNIT = `wg-quick@${WG_INTERFACE}.service`;
export const WG_DIR = "/etc/wireguard";
export const WG_PRIVATE_KEY_PATH = `${WG_DIR}/privatekey`;
export const WG_CONF_PATH = `${WG_DIR}/${WG_INTERFACE}.conf`;

export interface WgPeer {
    /** Shown as a comment, so whoever reads the config knows which member the section is for. */
    comment: string;
    publicKey: string;
    /** ip:port to dial; omitted for a peer that dials in. */
    endpoint?: string;
    allowedIps: string;
    keepaliveSeconds?: number;
}

/** One wg-quick `[Peer]` section, ending in a newline. */
export function renderPeer(peer: WgPeer): string {
    return [
        "[Peer]",
        `# ${peer.comment}`,
        `PublicKey = ${peer.publicKey}`,
        ...(peer.endpoint ? [`Endpoint = ${peer.endpoint}`] : []),
        `AllowedIPs = ${peer.allowedIps}`,
        ...(peer.keepaliveSeconds ? [`PersistentKeepalive = ${peer.keepaliveSeconds}`] : []),
        "",
    ].join("\n");
}
