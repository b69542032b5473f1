/**
 * Only root may reach the Linode Metadata service. It serves the instance's
 * user-data, and user-data carries the node's keys, the cluster password and
 * live presigned URLs: any process on the node (nats-server, or whatever an
 * attacker runs through it) could otherwise read them back over HTTP. An
 * nftables table rejects packets to the service from every other user, and
 * a oneshot unit loads it early on every boot, before the network and long
 * before any service user exists. cloud-init itself runs as root.
 */

/** Linode Metadata service, IPv4 and IPv6. */
export const METADATA_SERVICE_ADDRESSES = { ipv4: "169.254.169.254", ipv6: "fd00:a9fe:a9fe::1" } as const;
export const METADATA_GUARD_TABLE = "meshstack_metadata_guard";
export const METADATA_GUARD_RULES_PATH = "/etc/meshstack/metadata-guard.nft";
export const METADATA_GUARD_UNIT_NAME = "meshstack-metadata-guard.service";

/** The ruleset; re-applying it replaces the table instead of adding a second copy. */
export function renderMetadataGuardRules(): string {
    const { ipv4, ipv6 } = METADATA_SERVICE_ADDRESSES;
    return `# Rendered by meshstack: only root reaches the metadata service (it serves user-data).
table inet ${METADATA_GUARD_TABLE}
delete table inet ${METADATA_GUARD_TABLE}
table inet ${METADATA_GUARD_TABLE} {
  chain output {
    type filter hook output priority filter; policy accept;
    ip daddr ${ipv4} meta skuid != 0 counter reject
    ip6 daddr ${ipv6} meta skuid != 0 counter reject
  }
}
`;
}

export function renderMetadataGuardUnit(): string {
    return `[Unit]
Description=Only root reaches the metadata service (meshstack)
DefaultDependencies=no
Before=network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f ${METADATA_GUARD_RULES_PATH}

[Install]
WantedBy=sysinit.target
`;
}

/**
 * What a node's cloud-config adds: the two files, nftables, and a runcmd
 * that loads the rules before anything else runs (on later boots the unit
 * does it early).
 */
export function metadataGuardCloudConfig(): {
    files: { path: string; content: string; permissions: string; owner: string }[];
    packages: string[];
    runcmd: string[][];
} {
    return {
        files: [
            { path: METADATA_GUARD_RULES_PATH, content: renderMetadataGuardRules(), permissions: "0644", owner: "root:root" },
            { path: `/etc/systemd/system/${METADATA_GUARD_UNIT_NAME}`, content: renderMetadataGuardUnit(), permissions: "0644", owner: "root:root" },
        ],
        packages: ["nftables"],
        runcmd: [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", METADATA_GUARD_UNIT_NAME]],
    };
}
