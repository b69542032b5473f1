/**
 * The node agent: the runtime channel's consumer (lib/runtimeChannel.ts).
 * A systemd timer runs it every few seconds; each run fetches the node's
 * desired state with a SigV4-signed GET (curl's --aws-sigv4, the key from
 * a 0600 curl config file, so it is never in argv), and when the document
 * changed, verifies it and applies it in place:
 *
 * - WireGuard peers with `wg syncconf`: the interface stays up and peers
 *   that did not change keep their sessions;
 * - certificates and NATS routes with a nats-server reload (SIGHUP): clients
 *   and routes stay connected. The first apply starts nats-server, which
 *   until then has no certificate to serve.
 *
 * Nothing is applied that was made for another instance (a predecessor's
 * state still in the bucket), names another node, lists a key that is not a
 * WireGuard key, or carries a certificate that does not match the key on
 * this node or does not chain to the CA beside it. A failed run changes
 * nothing and the next run tries again.
 */
import {
    AGENT_CONFIG_PATH, AGENT_CREDENTIALS_PATH, AGENT_LOG_PATH, AGENT_RENDER_PATH, AGENT_ROOT_ENV, AGENT_SCRIPT_PATH, AGENT_STATE_DIR, AGENT_TIMER_NAME, AGENT_UNIT_NAME,
} from "./agent/layout";
import { NatsLayout, NATS_CLUSTER_ROUTES_FILE, NATS_UNIT_NAME, natsConfPath } from "./nats";
import { INSTANCE_ID_ENV } from "./nodeBootstrap";
import { WG_CONF_PATH, WG_INTERFACE, WG_PRIVATE_KEY_PATH, WG_QUICK_UNIT } from "./wgMesh";

/**
 * Seconds between runs. A run that finds the document unchanged costs one
 * GET, so a node costs 3600 / interval GETs an hour (see bench/agent.ts).
 */
export const AGENT_INTERVAL_SECONDS = 10;

export interface AgentNats {
    layout: NatsLayout;
    /** Files of the desired state's `certificates` and the private key each must match. */
    certificates: { file: string; matchesKey?: string; issuer?: string }[];
    routeUser: string;
    /** Root-only file holding the route password (from user-data). */
    routePasswordPath: string;
}

export interface AgentParams {
    node: string;
    /** Runtime bucket endpoint (scheme, host, port), SigV4 region, bucket and the desired state's key. */
    endpoint: string;
    region: string;
    bucket: string;
    key: string;
    /** wg0 address with prefix and the port it listens on. */
    wgAddress: string;
    wgListenPort: number;
    /** wg0.conf's [Interface] section, the same the first boot wrote (wgInterfaceSection). */
    interfaceSection: string;
    nats?: AgentNats;
}

function shellQuote(value: string): string {
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

function checkParams(params: AgentParams): void {
    if (!/^https?:\/\/[A-Za-z0-9.:[\]-]+$/.test(params.endpoint)) throw new Error(`agent endpoint ${JSON.stringify(params.endpoint)} is not a scheme://host[:port] URL`);
    for (const [what, value] of [["region", params.region], ["bucket", params.bucket], ["key", params.key], ["node", params.node]] as const) {
        if (!/^[A-Za-z0-9][A-Za-z0-9._/-]*$/.test(value)) throw new Error(`agent ${what} ${JSON.stringify(value)} is not allowed; allowed: letters, digits and . _ / -`);
    }
}

/** The agent's settings file: plain shell assignments, nothing secret. */
export function renderAgentConfig(params: AgentParams): string {
    checkParams(params);
    const lines = [
        "# meshstack agent settings (rendered by meshstack). The key pair is in the curl config beside it.",
        `node=${shellQuote(params.node)}`,
        `endpoint=${shellQuote(params.endpoint)}`,
        `region=${shellQuote(params.region)}`,
        `bucket=${shellQuote(params.bucket)}`,
        `key=${shellQuote(params.key)}`,
        `role=${params.nats ? "nats" : "hub"}`,
    ];
    return lines.join("\n") + "\n";
}

/** curl's config file with the read-only key pair: `user` is how --aws-sigv4 gets its credentials. */
export function renderAgentCredentials(accessKeyId: string, secretAccessKey: string): string {
    for (const [what, value] of [["access key id", accessKeyId], ["secret access key", secretAccessKey]]) {
        if (!/^[A-Za-z0-9+/=_-]+$/.test(value)) throw new Error(`the agent's ${what} holds characters a curl config cannot carry unescaped`);
    }
    return `# meshstack agent: a key that can read the runtime bucket only. Mode 0600.\nuser = "${accessKeyId}:${secretAccessKey}"\n`;
}

/**
 * Verifies and renders a desired state into a staging directory. Python,
 * because cloud-init needs it on every node anyway and JSON in bash is not
 * a thing to get right. Exit 3: not for this instance (yet), nothing to do.
 */
export function renderAgentRenderer(params: AgentParams): string {
    checkParams(params);
    const nats = params.nats;
    const certificates = JSON.stringify(nats?.certificates.map((c) => c.file) ?? []);
    return `#!/usr/bin/python3
# meshstack agent renderer (rendered by cloudinit/agent.ts): desired state JSON -> staged files.
import base64, ipaddress, json, os, re, sys

doc_path, stage, node, instance_id = sys.argv[1:5]
root = os.environ.get(${JSON.stringify(AGENT_ROOT_ENV)}, "")
WG_ADDRESS = ${JSON.stringify(params.wgAddress)}
WG_LISTEN_PORT = ${params.wgListenPort}
WG_PRIVATE_KEY = root + ${JSON.stringify(WG_PRIVATE_KEY_PATH)}
INTERFACE_SECTION = ${JSON.stringify(params.interfaceSection)}
CERTIFICATES = ${certificates}
ROLE = ${JSON.stringify(nats ? "nats" : "hub")}
ROUTE_USER = ${JSON.stringify(nats?.routeUser ?? "")}
ROUTE_PASSWORD_FILE = root + ${JSON.stringify(nats?.routePasswordPath ?? "")}
subnet = ipaddress.ip_interface(WG_ADDRESS).network

def fail(message):
    print(message, file=sys.stderr)
    sys.exit(2)

def wg_key(value):
    try:
        return isinstance(value, str) and len(value) == 44 and len(base64.b64decode(value, validate=True)) == 32
    except ValueError:
        return False

def plain(value, what):
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", value):
        fail(f"{what} {value!r} is not a plain name")
    return value

with open(doc_path, encoding="utf-8") as f:
    try:
        doc = json.load(f)
    except ValueError as e:
        fail(f"desired state is not JSON: {e}")
if not isinstance(doc, dict) or doc.get("version") != 1:
    fail(f"desired state has version {doc.get('version') if isinstance(doc, dict) else None!r}; this agent reads version 1")
if doc.get("node") != node:
    fail(f"desired state names node {doc.get('node')!r}, not {node}")
if str(doc.get("instanceId")) != instance_id:
    print(f"desired state is for instance {doc.get('instanceId')!r}, this is {instance_id}: waiting for pulumi up to write this instance's", file=sys.stderr)
    sys.exit(3)
if "PRIVATE KEY-----" in json.dumps(doc):
    fail("desired state carries private key material; refused")

# A wrong shape is refused (exit 2) like any bad value, not a traceback.
wireguard = doc.get("wireguard")
peers = wireguard.get("peers") if isinstance(wireguard, dict) else None
if not isinstance(peers, list) or not all(isinstance(peer, dict) for peer in peers):
    fail("desired state has no wireguard.peers list of objects")
sections = []
seen = set()
for peer in peers:
    name = plain(peer.get("name"), "peer name")
    key = peer.get("publicKey")
    if not wg_key(key) or key in seen:
        fail(f"peer {name}: public key {key!r} is not a WireGuard key, or is listed twice")
    seen.add(key)
    allowed = peer.get("allowedIps")
    if not isinstance(allowed, list) or not allowed:
        fail(f"peer {name}: no allowedIps")
    for cidr in allowed:
        try:
            net = ipaddress.ip_network(cidr)
        except ValueError:
            fail(f"peer {name}: allowed IPs {cidr!r} are not a network")
        # subnet_of raises on another address family instead of saying no.
        if net.version != subnet.version or not net.subnet_of(subnet):
            fail(f"peer {name}: allowed IPs {cidr} are outside {subnet}")
    lines = ["[Peer]", f"# {name}", f"PublicKey = {key}"]
    endpoint = peer.get("endpoint")
    if endpoint is not None:
        host, _, port = str(endpoint).rpartition(":")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            fail(f"peer {name}: endpoint {endpoint!r} is not ipv4:port")
        if not port.isdigit() or not 0 < int(port) < 65536:
            fail(f"peer {name}: endpoint {endpoint!r} is not ipv4:port")
        lines.append(f"Endpoint = {endpoint}")
    lines.append("AllowedIPs = " + ", ".join(allowed))
    keepalive = peer.get("keepaliveSeconds")
    if keepalive is not None:
        if not isinstance(keepalive, int) or not 0 < keepalive < 65536:
            fail(f"peer {name}: keepaliveSeconds {keepalive!r} is not 1-65535")
        lines.append(f"PersistentKeepalive = {keepalive}")
    sections.append("\\n".join(lines) + "\\n")

def write(name, text, mode=0o600):
    path = os.path.join(stage, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)

peer_text = "\\n".join(sections)
# wg-quick's file, for the next boot: the key stays in its own file.
write("wg0.conf", "# meshstack WireGuard (written by meshstack-agent from the desired state; edits are overwritten).\\n" + INTERFACE_SECTION + "\\n" + peer_text)
# wg's own format, for syncconf on the live interface.
with open(WG_PRIVATE_KEY, encoding="ascii") as f:
    private_key = f.read().strip()
write("wg-sync.conf", f"[Interface]\\nPrivateKey = {private_key}\\nListenPort = {WG_LISTEN_PORT}\\n\\n" + peer_text)

if ROLE == "nats":
    certificates = doc.get("certificates")
    if not isinstance(certificates, dict) or sorted(certificates) != sorted(CERTIFICATES):
        fail(f"desired state certificates are {sorted(certificates) if isinstance(certificates, dict) else certificates!r}; expected {sorted(CERTIFICATES)}")
    for name in CERTIFICATES:
        pem = certificates[name]
        if not isinstance(pem, str) or not pem.startswith("-----BEGIN CERTIFICATE-----"):
            fail(f"certificate {name} is not a PEM certificate")
        write(name, pem if pem.endswith("\\n") else pem + "\\n", 0o644)
    routes = doc.get("natsRoutes")
    if not isinstance(routes, list):
        fail("desired state has no natsRoutes list")
    for route in routes:
        host, _, port = str(route).rpartition(":")
        try:
            ok = ipaddress.IPv4Address(host) in subnet and port.isdigit()
        except ValueError:
            ok = False
        if not ok:
            fail(f"route {route!r} is not ipv4:port inside {subnet}")
    # The password comes from a root-only file, never from argv or the channel.
    with open(ROUTE_PASSWORD_FILE, encoding="ascii") as f:
        password = f.read().strip()
    if not re.fullmatch(r"[A-Za-z0-9]{16,}", password):
        fail("the route password file does not hold 16+ letters and digits")
    write("routes.conf", "# Written by meshstack-agent from the desired state. Mode 0600, owner nats.\\nroutes: [\\n"
          + "".join(f'  "nats-route://{ROUTE_USER}:{password}@{route}"\\n' for route in routes) + "]\\n")
print(f"{len(sections)} peer(s)" + (f", {len(doc['natsRoutes'])} route(s), {len(CERTIFICATES)} certificate(s)" if ROLE == "nats" else ""))
`;
}

/** The agent itself: bash, run by the timer; also safe to run by hand. */
export function renderAgentScript(params: AgentParams): string {
    checkParams(params);
    const nats = params.nats;
    const tlsApply = nats
        ? `
  # Each certificate must match this node's own key and chain to the CA
  # beside it, or nothing is installed.
${nats.certificates
    .filter((c) => c.matchesKey)
    .map((c) => `  if [ "$(openssl x509 -in "$stage/${c.file}" -noout -pubkey)" != "$(openssl pkey -in "$root${nats.layout.tlsDir}/${c.matchesKey}" -pubout)" ]; then
    log "refused: ${c.file} is not for this node's key ${c.matchesKey}"; return 1
  fi
${c.issuer ? `  openssl verify -CAfile "$stage/${c.issuer}" "$stage/${c.file}" >/dev/null 2>>"$log_file" || { log "refused: ${c.file} does not chain to ${c.issuer}"; return 1; }\n` : ""}`)
    .join("")}  local changed=0 file
  for file in ${nats.certificates.map((c) => c.file).join(" ")}; do
    if ! cmp -s "$stage/$file" "$root${nats.layout.tlsDir}/$file"; then
      install -m 0644 -o root -g root "$stage/$file" "$root${nats.layout.tlsDir}/$file.new" && mv "$root${nats.layout.tlsDir}/$file.new" "$root${nats.layout.tlsDir}/$file"
      changed=1
    fi
  done
  # Routes carry the password in their URLs: the file is the nats user's alone.
  local routes_file="$root${nats.layout.configDir}/${NATS_CLUSTER_ROUTES_FILE}"
  if ! cmp -s "$stage/routes.conf" "$routes_file"; then
    install -m 0600 -o ${nats.layout.user} -g ${nats.layout.group} "$stage/routes.conf" "$routes_file.new" && mv "$routes_file.new" "$routes_file"
    changed=1
  fi
  if [ "\${MESHSTACK_AGENT_SKIP_SERVICES:-}" = 1 ]; then
    log "MESHSTACK_AGENT_SKIP_SERVICES=1: not touching nats-server (changed=$changed)"
  elif systemctl is-active --quiet ${NATS_UNIT_NAME}; then
    if [ "$changed" = 1 ]; then
      runuser -u ${nats.layout.user} -- ${nats.layout.binary} -t -c "$root${natsConfPath(nats.layout)}" >>"$log_file" 2>&1 || { log "refused: nats.conf with the new files does not check"; return 1; }
      systemctl reload ${NATS_UNIT_NAME}
      log "nats-server reloaded (SIGHUP): new certificates or routes, no restart"
    fi
  else
    runuser -u ${nats.layout.user} -- ${nats.layout.binary} -t -c "$root${natsConfPath(nats.layout)}" >>"$log_file" 2>&1 || { log "refused: nats.conf does not check"; return 1; }
    systemctl enable --now ${NATS_UNIT_NAME} >>"$log_file" 2>&1
    log "nats-server started with its first certificates"
  fi
`
        : "";
    return `#!/bin/bash
# meshstack agent (rendered by cloudinit/agent.ts): fetches this node's desired
# state from the runtime bucket and applies what changed, in place.
# node, endpoint, region, bucket and key come from the settings file:
# shellcheck disable=SC2154
set -Eeuo pipefail

root="\${${AGENT_ROOT_ENV}:-}"
# shellcheck source=/dev/null
. "$root${AGENT_CONFIG_PATH}"
for setting in node endpoint region bucket key; do
  if [ -z "\${!setting:-}" ]; then echo "meshstack-agent: $setting is not set in $root${AGENT_CONFIG_PATH}" >&2; exit 1; fi
done
readonly state_dir="$root${AGENT_STATE_DIR}"
readonly log_file="$root${AGENT_LOG_PATH}"
readonly interface=${WG_INTERFACE}
mkdir -p "$state_dir" "$(dirname "$log_file")"
chmod 700 "$state_dir"

log() {
  printf '%s meshstack-agent: %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" | tee -a "$log_file" >&2
}

instance_id() {
  if [ -n "\${${INSTANCE_ID_ENV}:-}" ]; then
    echo "$${INSTANCE_ID_ENV}"
  else
    cloud-init query v1.instance_id
  fi
}

apply_tls_and_routes() {
  local stage=$1
  ${nats ? "" : ":"}${tlsApply}
}

apply_wireguard() {
  local stage=$1
  install -m 0600 -o root -g root "$stage/wg0.conf" "$root${WG_CONF_PATH}.new"
  mv "$root${WG_CONF_PATH}.new" "$root${WG_CONF_PATH}"
  if ip link show "$interface" >/dev/null 2>&1; then
    # Only what differs changes; the interface and unchanged sessions stay.
    wg syncconf "$interface" "$stage/wg-sync.conf"
  elif [ "\${MESHSTACK_AGENT_SKIP_SERVICES:-}" = 1 ]; then
    log "MESHSTACK_AGENT_SKIP_SERVICES=1: $interface is not up, not starting it"
  else
    systemctl restart ${WG_QUICK_UNIT}
  fi
}

run() {
  local doc="$state_dir/desired.json.new" status digest stage summary rc
  # The object key is made of URL-safe characters (lib/runtimeChannel.ts).
  status=$(curl -sS --connect-timeout 5 --max-time 20 \\
    --aws-sigv4 "aws:amz:$region:s3" -K "$root${AGENT_CREDENTIALS_PATH}" \\
    -o "$doc" -w '%{http_code}' "$endpoint/$bucket/$key") || { log "GET $bucket/$key failed (network)"; return 1; }
  case "$status" in
    200) ;;
    404) log "no desired state at $bucket/$key yet"; return 0 ;;
    *) log "GET $bucket/$key: HTTP $status $(head -c 300 "$doc" | tr -d '\\n')"; return 1 ;;
  esac
  digest=$(sha256sum "$doc" | cut -d' ' -f1)
  if [ -f "$state_dir/applied.sha256" ] && [ "$(cat "$state_dir/applied.sha256")" = "$digest" ]; then
    return 0
  fi
  stage=$(mktemp -d "$state_dir/stage.XXXXXX")
  trap 'rm -rf "$stage"' RETURN
  rc=0
  summary=$(python3 "$root${AGENT_RENDER_PATH}" "$doc" "$stage" "$node" "$(instance_id)" 2>>"$log_file") || rc=$?
  if [ "$rc" = 3 ]; then
    log "desired state $digest is not for this instance yet; waiting"
    return 0
  elif [ "$rc" != 0 ]; then
    log "refused desired state $digest (see above); nothing applied"
    return 1
  fi
  apply_tls_and_routes "$stage"
  apply_wireguard "$stage"
  echo "$digest" >"$state_dir/applied.sha256"
  log "applied desired state $digest: $summary"
}

# One run at a time: the timer and a hand-run agent never interleave.
exec 9>"$state_dir/lock"
flock 9
run
`;
}

/** The oneshot service the timer starts. */
export function renderAgentUnit(): string {
    return `[Unit]
Description=meshstack agent: apply this node's desired state from the runtime bucket
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=${AGENT_SCRIPT_PATH}
TimeoutStartSec=120
`;
}

export function renderAgentTimer(intervalSeconds = AGENT_INTERVAL_SECONDS): string {
    return `[Unit]
Description=meshstack agent every ${intervalSeconds}s

[Timer]
OnBootSec=5s
OnUnitActiveSec=${intervalSeconds}s
AccuracySec=1s

[Install]
WantedBy=timers.target
`;
}

export interface AgentFile {
    path: string;
    content: string;
    permissions: string;
}

/** Everything the agent is, as files for a cloud-config (all root-owned). */
export function agentFiles(params: AgentParams, credentials: { accessKeyId: string; secretAccessKey: string }): AgentFile[] {
    return [
        { path: AGENT_CONFIG_PATH, content: renderAgentConfig(params), permissions: "0644" },
        { path: AGENT_CREDENTIALS_PATH, content: renderAgentCredentials(credentials.accessKeyId, credentials.secretAccessKey), permissions: "0600" },
        { path: AGENT_RENDER_PATH, content: renderAgentRenderer(params), permissions: "0700" },
        { path: AGENT_SCRIPT_PATH, content: renderAgentScript(params), permissions: "0700" },
        { path: `/etc/systemd/system/${AGENT_UNIT_NAME}`, content: renderAgentUnit(), permissions: "0644" },
        { path: `/etc/systemd/system/${AGENT_TIMER_NAME}`, content: renderAgentTimer(), permissions: "0644" },
    ];
}
