/**
 * First-boot configuration of the WireGuard cache node: a cloud-config whose
 * only job is to drop one bootstrap script and run it. Everything that can
 * fail lives in the script, so it logs, retries and can be re-run by hand or
 * by a test exactly as the node runs it.
 *
 * Lessons built in: no awscli (it broke on Debian 13 against
 * Linode Object Storage), the public key goes up with curl to a presigned PUT
 * URL; every step is logged to a file an operator can read over break-glass
 * SSH or the Linode console.
 */
import { stringify } from "yaml";
import { metadataGuardCloudConfig } from "./metadataGuard";
import { ipv4InCidr, isIpv4Cidr } from "../lib/ip";
import { WG_LISTEN_PORT_MAX, WG_LISTEN_PORT_MIN } from "../lib/limits";
import { renderHubPeers, renderPeer, WG_INTERFACE, WG_PERSISTENT_KEEPALIVE_SECONDS, WgSpokePeer } from "./wgMesh";

export const WG_BOOTSTRAP_SCRIPT_PATH = "/usr/local/sbin/meshstack-wg-bootstrap";
export const WG_BOOTSTRAP_LOG_PATH = "/var/log/meshstack-wg-bootstrap.log";
/** Turns on forwarding for wg0 alone, so spokes reach each other through the hub. */
export const WG_HUB_SYSCTL_PATH = "/etc/sysctl.d/99-meshstack-wg.conf";
/** Priorities of the two policy-routing rules that keep forwarded traffic inside the subnet. */
export const WG_HUB_RULE_PRIORITIES = [31000, 31001] as const;
/** Relocates every path the script touches; tests set it to a temp dir, nodes leave it unset. */
export const WG_ROOT_ENV = "MESHSTACK_WG_ROOT";
/** Skips `wg-quick@wg0` (needs systemd and the wireguard kernel module); only tests set it. */
export const WG_SKIP_INTERFACE_ENV = "MESHSTACK_WG_SKIP_INTERFACE";

export interface WgBootstrapParams {
    /** Presigned PUT URL for the public key object. A credential: never logged. */
    pubkeyPutUrl: string;
    /** UDP port wg0 listens on. */
    listenPort: number;
    /** wg0 interface address with prefix, e.g. 10.44.0.1/24. */
    address: string;
    /** The WireGuard subnet the address is in (MeshTopology.subnet), e.g. 10.44.0.0/24. */
    subnet: string;
    /** The spokes this hub accepts, each with its key and address in the subnet. None by default. */
    spokes?: WgSpokePeer[];
}

function shellQuote(value: string): string {
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

function checkParams(params: WgBootstrapParams): void {
    if (!Number.isInteger(params.listenPort) || params.listenPort < WG_LISTEN_PORT_MIN || params.listenPort > WG_LISTEN_PORT_MAX) {
        throw new Error(`listenPort ${params.listenPort} is invalid (meshstack:wgListenPort); allowed: an integer from ${WG_LISTEN_PORT_MIN} to ${WG_LISTEN_PORT_MAX}`);
    }
    if (!/^https?:\/\/\S+$/.test(params.pubkeyPutUrl)) {
        throw new Error("pubkeyPutUrl is not an http(s) URL; it must be the presigned PUT URL of the public key object");
    }
    if (!isIpv4Cidr(params.address) || !ipv4InCidr(params.address.split("/")[0], params.subnet)) {
        throw new Error(`address ${JSON.stringify(params.address)} (meshstack:wgCacheAddress) is not an IPv4 address with prefix inside the subnet ${params.subnet}`);
    }
    const hubIp = params.address.split("/")[0];
    const clash = (params.spokes ?? []).find((spoke) => spoke.address === hubIp);
    if (clash) {
        throw new Error(`spoke ${clash.name} has the hub's own WireGuard address ${hubIp} (meshstack:wgCacheAddress); allowed: an address outside the spokes' range`);
    }
}

/** The bootstrap script, bash for Debian. Idempotent: a re-run keeps the keypair. */
export function renderWgBootstrapScript(params: WgBootstrapParams): string {
    checkParams(params);
    const spokes = params.spokes ?? [];
    const subnet = params.subnet;
    const [ruleInSubnet, ruleElse] = WG_HUB_RULE_PRIORITIES;
    // A quoted heredoc: the peer sections reach wg0.conf as literal text.
    const peers = spokes.length ? `cat >>"$conf.new" <<'EOF'\n${renderHubPeers(subnet, spokes)}EOF\n` : "";
    return `#!/bin/bash
# meshstack WireGuard cache bootstrap, rendered by cloudinit/wgCache.ts.
# Generates the node's WireGuard keypair once, brings up ${WG_INTERFACE} and
# publishes only the public key. Safe to re-run: an existing key is kept.
set -Eeuo pipefail

root="\${${WG_ROOT_ENV}:-}"
readonly wg_dir="$root/etc/wireguard"
readonly log_file="$root${WG_BOOTSTRAP_LOG_PATH}"
readonly interface=${WG_INTERFACE}
readonly listen_port=${params.listenPort}
readonly address=${shellQuote(params.address)}
readonly subnet=${shellQuote(subnet)}
# The URL is a literal: nothing in it may expand.
# shellcheck disable=SC2016
readonly pubkey_put_url=${shellQuote(params.pubkeyPutUrl)}

mkdir -p "$(dirname "$log_file")"
log() {
  printf '%s meshstack-wg-bootstrap: %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" | tee -a "$log_file" >&2
}
on_error() {
  log "FAILED (exit $1) at line $2: $3"
}
trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR

install_wireguard_tools() {
  local attempt
  for attempt in 1 2 3 4 5; do
    # --no-install-recommends: the recommended wireguard-dkms would compile a
    # module the stock kernel already has.
    if apt-get -o DPkg::Lock::Timeout=120 update -q >>"$log_file" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -q --no-install-recommends wireguard-tools >>"$log_file" 2>&1; then
      return 0
    fi
    log "installing wireguard-tools failed (attempt $attempt of 5); retrying in 10s"
    sleep 10
  done
  return 1
}

log "starting (log: $log_file)"
if command -v wg >/dev/null 2>&1; then
  log "wireguard-tools present: $(wg --version)"
else
  log "wg not found; installing wireguard-tools"
  install_wireguard_tools
  log "installed: $(wg --version)"
fi

umask 077
mkdir -p "$wg_dir"
chmod 700 "$wg_dir"
private_key="$wg_dir/privatekey"
if [ -s "$private_key" ]; then
  log "keeping the existing private key $private_key"
else
  log "generating a keypair in $wg_dir"
  # Written aside and renamed, so a crash never leaves an empty key behind.
  wg genkey >"$private_key.new"
  mv "$private_key.new" "$private_key"
fi
chmod 600 "$private_key"
wg pubkey <"$private_key" >"$wg_dir/publickey"
log "public key: $(cat "$wg_dir/publickey")"

# Spokes reach each other through this node, so it forwards, but on
# $interface alone: the global ip_forward stays off and nothing that arrives
# on the public interface is ever routed (a neighbour could otherwise hand
# it packets for the subnet and have them encrypted to a spoke). $interface
# does not exist yet, so its PostUp applies the drop-in (systemd-udevd also
# does whenever $interface appears; at boot systemd-sysctl skips its keys).
sysctl_file="$root${WG_HUB_SYSCTL_PATH}"
mkdir -p "$(dirname "$sysctl_file")"
cat >"$sysctl_file.new" <<EOF
# meshstack WireGuard hub (rendered by meshstack): forward between spokes, on $interface only.
net.ipv4.conf.$interface.forwarding = 1
# Every spoke's only peer is the hub, so a redirect to another spoke is noise.
# The kernel sends one unless both all and $interface say no; this node
# forwards nowhere else, so turning off all costs nothing.
net.ipv4.conf.all.send_redirects = 0
net.ipv4.conf.$interface.send_redirects = 0
EOF
chmod 644 "$sysctl_file.new"
mv "$sysctl_file.new" "$sysctl_file"
log "wrote $sysctl_file (forwarding on $interface only)"

# The private key stays in its one file; wg-quick loads it from there. What
# arrives on $interface is routed back into the subnet or refused: a spoke
# cannot use the hub as a way out to anywhere else.
conf="$wg_dir/$interface.conf"
cat >"$conf.new" <<EOF
[Interface]
Address = $address
ListenPort = $listen_port
PostUp = wg set %i private-key $private_key
PostUp = sysctl -q -p $sysctl_file
PostUp = ip -4 rule add iif %i to $subnet lookup main pref ${ruleInSubnet}
PostUp = ip -4 rule add iif %i unreachable pref ${ruleElse}
PostDown = ip -4 rule del pref ${ruleInSubnet}
PostDown = ip -4 rule del pref ${ruleElse}
EOF
${peers}mv "$conf.new" "$conf"
log "wrote $conf (address $address, udp/$listen_port)"
log "$interface accepts ${spokes.length} spoke(s) in $subnet"

if [ "\${${WG_SKIP_INTERFACE_ENV}:-}" = 1 ]; then
  log "${WG_SKIP_INTERFACE_ENV}=1: not bringing up $interface"
else
  systemctl enable --now "wg-quick@$interface" >>"$log_file" 2>&1
  wg show "$interface" >>"$log_file" 2>&1
  log "$interface is up on udp/$listen_port"
fi

# Published last: a key in the bucket means the tunnel end is ready.
log "publishing the public key"
if ! response=$(curl --fail-with-body -sS --connect-timeout 10 --max-time 30 \\
  --retry 10 --retry-all-errors --retry-delay 5 --retry-max-time 300 \\
  -T "$wg_dir/publickey" "$pubkey_put_url" 2>&1); then
  log "publishing the public key failed: $response"
  exit 1
fi
log "published the public key"
log "done"
`;
}

/** The cache node's cloud-config: the bootstrap script and a runcmd that runs it. */
export function renderWgCacheCloudConfig(params: WgBootstrapParams): string {
    const guard = metadataGuardCloudConfig();
    const document = {
        write_files: [
            {
                path: WG_BOOTSTRAP_SCRIPT_PATH,
                owner: "root:root",
                permissions: "0700",
                content: renderWgBootstrapScript(params),
            },
            ...guard.files,
        ],
        packages: guard.packages,
        runcmd: [...guard.runcmd, [WG_BOOTSTRAP_SCRIPT_PATH]],
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
