/**
 * First boot of every mesh member (the hub and each NATS node): the one
 * place private keys are made. The script generates the node's WireGuard
 * key and, on NATS nodes, its TLS keys and certificate signing requests,
 * brings up wg0 with no peers yet, and publishes only public material (the
 * WireGuard public key, the CSRs, the instance id) through the presigned
 * PUT in its user-data. No private key ever leaves the node: not to state,
 * not to user-data, not to a bucket. The peers and the certificates arrive
 * later through the agent (cloudinit/agent.ts).
 *
 * Lessons built in: no awscli (it broke on Debian 13 against Linode Object
 * Storage), curl to a presigned URL instead; every step is logged to a
 * file an operator can read over break-glass SSH or the Linode console.
 */
import { ipv4InCidr, isIpv4Cidr } from "../lib/ip";
import { WG_LISTEN_PORT_MAX, WG_LISTEN_PORT_MIN } from "../lib/limits";
import { RUNTIME_FORMAT_VERSION } from "../lib/runtimeChannel";
import { WG_CONF_PATH, WG_DIR, WG_INTERFACE, WG_PRIVATE_KEY_PATH } from "./wgMesh";

export const NODE_BOOTSTRAP_SCRIPT_PATH = "/usr/local/sbin/meshstack-node-bootstrap";
export const NODE_BOOTSTRAP_LOG_PATH = "/var/log/meshstack-node-bootstrap.log";
/** Relocates every path the script touches; tests set it to a temp dir, nodes leave it unset. */
export const NODE_ROOT_ENV = "MESHSTACK_NODE_ROOT";
/** Skips `wg-quick@wg0` (needs systemd and the wireguard kernel module); only tests set it. */
export const NODE_SKIP_INTERFACE_ENV = "MESHSTACK_NODE_SKIP_INTERFACE";
/**
 * Stands in for the node's presigned PUT URL in a cloud-config until it is
 * signed: the URL is signed per boot generation, and the generation keys on
 * the cloud-config without it (components/meshNode.ts).
 */
export const PUBLISH_URL_PLACEHOLDER = "https://publish-url.meshstack.invalid/placeholder";
/**
 * Stands in for the agents' key pair in a cloud-config until MeshNode puts in
 * the pair pinned to the instance's boot generation: the generation keys on
 * the cloud-config without the key, so rotating the key replaces no instance.
 */
export const AGENT_KEY_PLACEHOLDER = { accessKeyId: "MESHSTACKAGENTKEYIDPLACEHOLDER", secretAccessKey: "MESHSTACKAGENTSECRETKEYPLACEHOLDER" } as const;
/** Overrides what cloud-init reports as the instance id; only tests set it. */
export const INSTANCE_ID_ENV = "MESHSTACK_INSTANCE_ID";

export interface CertificateRequestSpec {
    /** Purpose, the key of `certificateRequests` in the published material (route, server). */
    name: string;
    /** Where the private key is made and stays. */
    keyPath: string;
    /** Owner of the key file (user:group). */
    owner: string;
    /** openssl req config: subject and SANs (opensslRequestConfig). */
    requestConfig: string;
}

export interface NodeBootstrapParams {
    /** The member's name in the channel (hostname for NATS nodes). */
    node: string;
    /** Presigned PUT URL of the published material. A credential: never logged. */
    publishPutUrl: string;
    /** UDP port wg0 listens on. */
    listenPort: number;
    /** wg0 address with prefix, e.g. 10.44.0.10/24. */
    address: string;
    /** The mesh subnet (MeshTopology.subnet). */
    subnet: string;
    /** wg0.conf's [Interface] section (wgInterfaceSection); the agent keeps the same one. */
    interfaceSection: string;
    /** Files written before wg0 comes up (the hub's forwarding sysctl drop-in). */
    extraFiles?: { path: string; content: string }[];
    certificateRequests?: CertificateRequestSpec[];
}

export interface WgInterfaceParams {
    /** wg0 address with prefix. */
    address: string;
    listenPort: number;
    /** Extra PostUp/PostDown lines (the hub's policy routing). */
    extra?: string[];
}

/** The [Interface] section every wg0.conf of the node has, from first boot on. */
export function wgInterfaceSection(params: WgInterfaceParams): string {
    return [
        "[Interface]",
        `Address = ${params.address}`,
        `ListenPort = ${params.listenPort}`,
        `PostUp = wg set %i private-key ${WG_PRIVATE_KEY_PATH}`,
        ...(params.extra ?? []),
        "",
    ].join("\n");
}

function shellQuote(value: string): string {
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

function checkParams(params: NodeBootstrapParams): void {
    if (!Number.isInteger(params.listenPort) || params.listenPort < WG_LISTEN_PORT_MIN || params.listenPort > WG_LISTEN_PORT_MAX) {
        throw new Error(`listenPort ${params.listenPort} is invalid (meshstack:wgListenPort); allowed: an integer from ${WG_LISTEN_PORT_MIN} to ${WG_LISTEN_PORT_MAX}`);
    }
    if (!/^https?:\/\/[^\s']+$/.test(params.publishPutUrl)) {
        throw new Error("publishPutUrl is not an http(s) URL; it must be the presigned PUT URL of the node's published material");
    }
    if (!isIpv4Cidr(params.address) || !ipv4InCidr(params.address.split("/")[0], params.subnet)) {
        throw new Error(`address ${JSON.stringify(params.address)} is not an IPv4 address with prefix inside the subnet ${params.subnet}`);
    }
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(params.node)) throw new Error(`node name ${JSON.stringify(params.node)} is not allowed; allowed: up to 63 letters, digits and . _ -`);
    for (const request of params.certificateRequests ?? []) {
        if (!/^[a-z]+$/.test(request.name) || !/^\/[A-Za-z0-9._/-]+$/.test(request.keyPath) || !/^[a-z_][a-z0-9_-]*:[a-z_][a-z0-9_-]*$/.test(request.owner)) {
            throw new Error(`certificate request ${JSON.stringify(request.name)}: name, key path or owner holds characters the script cannot carry`);
        }
    }
}

/** The first-boot script, bash for Debian. Idempotent: a re-run keeps every key. */
export function renderNodeBootstrapScript(params: NodeBootstrapParams): string {
    checkParams(params);
    const heredoc = (path: string, content: string) => `cat >"$root${path}.new" <<'EOF'\n${content.endsWith("\n") ? content : content + "\n"}EOF\nmv "$root${path}.new" "$root${path}"\n`;
    const extraFiles = (params.extraFiles ?? []).map((f) => `mkdir -p "$(dirname "$root${f.path}")"\n${heredoc(f.path, f.content)}log "wrote ${f.path}"\n`).join("");
    const requests = (params.certificateRequests ?? []).map((r) => `make_request ${r.name} "$root${r.keyPath}" ${r.owner} <<'EOF'\n${r.requestConfig}EOF\n`).join("");
    const requestNames = JSON.stringify((params.certificateRequests ?? []).map((r) => r.name));
    return `#!/bin/bash
# meshstack node bootstrap (rendered by cloudinit/nodeBootstrap.ts) for ${params.node}.
# Makes this node's keys once, brings up ${WG_INTERFACE} with no peers yet and
# publishes only public material. Safe to re-run: existing keys are kept.
set -Eeuo pipefail

root="\${${NODE_ROOT_ENV}:-}"
readonly log_file="$root${NODE_BOOTSTRAP_LOG_PATH}"
readonly wg_dir="$root${WG_DIR}"
readonly interface=${WG_INTERFACE}
readonly node=${shellQuote(params.node)}
# The URL is a literal: nothing in it may expand.
# shellcheck disable=SC2016
readonly publish_put_url=${shellQuote(params.publishPutUrl)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$(dirname "$log_file")"
log() {
  printf '%s meshstack-node-bootstrap: %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" | tee -a "$log_file" >&2
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
    # The first try uses the lists cloud-init's packages stage just fetched.
    if { [ "$attempt" = 1 ] || apt-get -o DPkg::Lock::Timeout=120 update -q >>"$log_file" 2>&1; } &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -q --no-install-recommends wireguard-tools >>"$log_file" 2>&1; then
      return 0
    fi
    log "installing wireguard-tools failed (attempt $attempt of 5); retrying in 10s"
    sleep 10
  done
  return 1
}

# A key and its request, made once: written aside and renamed, so a crash
# never leaves an empty key behind. The request config comes on stdin.
make_request() {
  local name=$1 key=$2 owner=$3
  cat >"$work/$name.cnf"
  # The directory is traversable (the service user reads its certificates there); the key is not.
  (umask 022 && mkdir -p "$(dirname "$key")")
  if [ -s "$key" ]; then
    log "keeping the existing $name key $key"
  else
    log "generating the $name key $key (ECDSA P-256)"
    (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$key.new")
    mv "$key.new" "$key"
  fi
  chmod 600 "$key"
  if [ -z "\${${NODE_ROOT_ENV}:-}" ]; then chown "$owner" "$key"; fi
  openssl req -new -key "$key" -config "$work/$name.cnf" -out "$work/$name.csr"
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
private_key="$root${WG_PRIVATE_KEY_PATH}"
if [ -s "$private_key" ]; then
  log "keeping the existing WireGuard key $private_key"
else
  log "generating a WireGuard keypair in $wg_dir"
  wg genkey >"$private_key.new"
  mv "$private_key.new" "$private_key"
fi
chmod 600 "$private_key"
wg pubkey <"$private_key" >"$wg_dir/publickey"
log "WireGuard public key: $(cat "$wg_dir/publickey")"

${requests}${extraFiles}
# Peers arrive through the agent; until then ${WG_INTERFACE} is up with none.
conf="$root${WG_CONF_PATH}"
if [ -s "$conf" ]; then
  log "keeping $conf (the agent owns it once it has applied a desired state)"
else
${heredoc(WG_CONF_PATH, `# meshstack WireGuard (rendered by meshstack; the agent adds the peers).\n${params.interfaceSection}`)}  log "wrote $conf (address ${params.address}, udp/${params.listenPort}, no peers yet)"
fi

if [ "\${${NODE_SKIP_INTERFACE_ENV}:-}" = 1 ]; then
  log "${NODE_SKIP_INTERFACE_ENV}=1: not bringing up $interface"
else
  systemctl enable --now "wg-quick@$interface" >>"$log_file" 2>&1
  log "$interface is up on udp/${params.listenPort}"
fi

instance_id="\${${INSTANCE_ID_ENV}:-}"
if [ -z "$instance_id" ]; then instance_id=$(cloud-init query v1.instance_id); fi
log "instance id: $instance_id"

# JSON by python3 (cloud-init's own runtime): PEM newlines need escaping.
python3 - "$work" "$node" "$instance_id" "$wg_dir/publickey" >"$work/published.json" <<'EOF'
import json, os, sys
work, node, instance_id, pubkey_file = sys.argv[1:5]
requests = {}
for name in ${requestNames}:
    with open(os.path.join(work, name + ".csr"), encoding="ascii") as f:
        requests[name] = f.read()
with open(pubkey_file, encoding="ascii") as f:
    public_key = f.read().strip()
print(json.dumps({"version": ${RUNTIME_FORMAT_VERSION}, "node": node, "instanceId": instance_id, "wgPublicKey": public_key, "certificateRequests": requests}))
EOF

# Published last: material in the bucket means the tunnel end is ready.
log "publishing the public material"
if ! response=$(curl --fail-with-body -sS --connect-timeout 10 --max-time 30 \\
  --retry 10 --retry-all-errors --retry-delay 5 --retry-max-time 300 \\
  -H 'Content-Type: application/json' -T "$work/published.json" "$publish_put_url" 2>&1); then
  log "publishing failed: $response"
  exit 1
fi
log "published the public material"
log "done"
`;
}
