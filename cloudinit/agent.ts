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
 *   until then has no certificate to serve;
 * - root's SSH keys: root's authorized_keys, which the agent owns, replaced
 *   atomically when the list differs (first, so a later step that fails
 *   still leaves the operators' way in current). A state without the list
 *   leaves the file alone; an empty list empties it.
 * - the agents' key (lib/agentKey.ts), last: an offered key other than the
 *   one in use is opened with the node's WireGuard key, proved by one
 *   signed GET of the desired state, and only then installed; a key that
 *   cannot read fails the run and the current one stays. Then the node
 *   reports the key it reads with through the offer's presigned PUT, on
 *   this run or, if that fails, a later one.
 *
 * Nothing is applied that was made for another instance (a predecessor's
 * state still in the bucket), names another node, lists a key that is not a
 * WireGuard key, or carries a certificate that does not match the key on
 * this node or does not chain to the CA beside it. A failed run changes
 * nothing and the next run tries again.
 */
import * as fs from "fs";
import * as path from "path";
import {
    AGENT_CONFIG_PATH, AGENT_CREDENTIALS_PATH, AGENT_LOG_PATH, AGENT_RENDER_PATH, AGENT_ROOT_ENV, AGENT_SCRIPT_PATH, AGENT_STATE_DIR, AGENT_TIMER_NAME, AGENT_UNIT_NAME,
    ROOT_AUTHORIZED_KEYS_PATH,
} from "./agent/layout";
import { AGENT_KEY_ID_LENGTH, SEAL_INFO, SEAL_SCHEME, X25519_PKCS8_PREFIX, X25519_SPKI_PREFIX } from "../lib/agentKey";
import { SSH_KEY_TYPES } from "../lib/config/access";
import { NatsLayout, NATS_CLUSTER_ROUTES_FILE, NATS_NODE_LAYOUT, NATS_ROUTE_PASSWORD_PATH, NATS_ROUTE_USER, NATS_TLS_FILES, NATS_UNIT_NAME, natsConfPath } from "./nats";
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

/**
 * What a NATS node's agent installs: each TLS file checked against its key
 * and issuer before nats-server sees it. One home, because the program and
 * the agent's integration tests must hand the agent the same list.
 */
export const NATS_NODE_AGENT: AgentNats = {
    layout: NATS_NODE_LAYOUT,
    certificates: [
        { file: NATS_TLS_FILES.routeCa },
        { file: NATS_TLS_FILES.routeCert, matchesKey: NATS_TLS_FILES.routeKey, issuer: NATS_TLS_FILES.routeCa },
        { file: NATS_TLS_FILES.clientCa },
        { file: NATS_TLS_FILES.serverCert, matchesKey: NATS_TLS_FILES.serverKey, issuer: NATS_TLS_FILES.clientCa },
    ],
    routeUser: NATS_ROUTE_USER,
    routePasswordPath: NATS_ROUTE_PASSWORD_PATH,
};

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

/** The first line of the agent's curl config; the renderer writes it too, for a key the desired state offers. */
export const AGENT_CREDENTIALS_COMMENT = "# meshstack agent: a key that can read the runtime bucket only. Mode 0600.";
/** What a key pair may hold: a curl config carries these unescaped (a Python regex too, for the renderer). */
export const AGENT_CREDENTIAL_CHARACTERS = "[A-Za-z0-9+/=_-]+";

/** curl's config file with the read-only key pair: `user` is how --aws-sigv4 gets its credentials. */
export function renderAgentCredentials(accessKeyId: string, secretAccessKey: string): string {
    for (const [what, value] of [["access key id", accessKeyId], ["secret access key", secretAccessKey]]) {
        if (!new RegExp(`^${AGENT_CREDENTIAL_CHARACTERS}$`).test(value)) throw new Error(`the agent's ${what} holds characters a curl config cannot carry unescaped`);
    }
    return `${AGENT_CREDENTIALS_COMMENT}\nuser = "${accessKeyId}:${secretAccessKey}"\n`;
}

/** The renderer's source: real Python, so pyflakes3 reads it and its own unit tests run it (tests/cloudinit/agent/). */
export const AGENT_RENDER_SOURCE = path.join(__dirname, "agent", "agent_render.py");
/** The lines around the source's constants block, which each node gets with its own values instead. */
export const AGENT_RENDER_CONSTANTS_BEGIN = "# BEGIN per-node constants";
export const AGENT_RENDER_CONSTANTS_END = "# END per-node constants";

/**
 * Verifies and renders a desired state into a staging directory. Python,
 * because cloud-init needs it on every node anyway and JSON in bash is not
 * a thing to get right. Exit 3: not for this instance (yet), nothing to do.
 */
export function renderAgentRenderer(params: AgentParams): string {
    checkParams(params);
    const nats = params.nats;
    const constants = [
        `root = os.environ.get(${JSON.stringify(AGENT_ROOT_ENV)}, "")`,
        `WG_ADDRESS = ${JSON.stringify(params.wgAddress)}`,
        `WG_LISTEN_PORT = ${params.wgListenPort}`,
        `WG_PRIVATE_KEY = root + ${JSON.stringify(WG_PRIVATE_KEY_PATH)}`,
        `INTERFACE_SECTION = ${JSON.stringify(params.interfaceSection)}`,
        `CERTIFICATES = ${JSON.stringify(nats?.certificates.map((c) => c.file) ?? [])}`,
        `ROLE = ${JSON.stringify(nats ? "nats" : "hub")}`,
        `ROUTE_USER = ${JSON.stringify(nats?.routeUser ?? "")}`,
        `ROUTE_PASSWORD_FILE = root + ${JSON.stringify(nats?.routePasswordPath ?? "")}`,
        `SSH_KEY_TYPES = ${JSON.stringify(SSH_KEY_TYPES)}`,
        `AGENT_CREDENTIALS = root + ${JSON.stringify(AGENT_CREDENTIALS_PATH)}`,
        `AGENT_CREDENTIALS_COMMENT = ${JSON.stringify(AGENT_CREDENTIALS_COMMENT)}`,
        `AGENT_CREDENTIAL_CHARACTERS = ${JSON.stringify(AGENT_CREDENTIAL_CHARACTERS)}`,
        `AGENT_KEY_ID_LENGTH = ${AGENT_KEY_ID_LENGTH}`,
        `SEAL_SCHEME = ${JSON.stringify(SEAL_SCHEME)}`,
        `SEAL_INFO = ${JSON.stringify(SEAL_INFO)}`,
        `X25519_PKCS8_PREFIX = ${JSON.stringify(X25519_PKCS8_PREFIX)}`,
        `X25519_SPKI_PREFIX = ${JSON.stringify(X25519_SPKI_PREFIX)}`,
    ];
    return embedAgentRenderConstants(fs.readFileSync(AGENT_RENDER_SOURCE, "utf8"), constants);
}

/**
 * The renderer's source with its constants block, marker lines included,
 * replaced by `constants`. Without exactly one block the node would get the
 * file's sample values, so that is an error here, not at the node.
 */
export function embedAgentRenderConstants(source: string, constants: string[]): string {
    const lines = source.split("\n");
    const only = (marker: string) => {
        const found = lines.flatMap((line, i) => (line === marker ? [i] : []));
        if (found.length !== 1) throw new Error(`${AGENT_RENDER_SOURCE} has ${found.length} lines "${marker}"; it needs exactly one, around the constants cloudinit/agent.ts fills in`);
        return found[0];
    };
    const begin = only(AGENT_RENDER_CONSTANTS_BEGIN);
    const end = only(AGENT_RENDER_CONSTANTS_END);
    if (end < begin) throw new Error(`${AGENT_RENDER_SOURCE} has "${AGENT_RENDER_CONSTANTS_END}" before "${AGENT_RENDER_CONSTANTS_BEGIN}"`);
    return [...lines.slice(0, begin), ...constants, ...lines.slice(end + 1)].join("\n");
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

apply_authorized_keys() {
  local stage=$1 file="$root${ROOT_AUTHORIZED_KEYS_PATH}" count
  # Staged only when the desired state lists keys (none at all included).
  [ -f "$stage/authorized_keys" ] || return 0
  cmp -s "$stage/authorized_keys" "$file" && return 0
  install -d -m 0700 -o root -g root "$(dirname "$file")"
  install -m 0600 -o root -g root "$stage/authorized_keys" "$file.new"
  mv "$file.new" "$file"
  count=$(wc -l <"$file")
  if [ "$count" = 0 ]; then
    log "root's authorized_keys EMPTIED: the desired state lists no SSH key (meshstack:sshAuthorizedKeys is empty); no key logs in to this node until one is added"
  else
    log "root's authorized_keys replaced: $count key(s)"
  fi
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

# The key id a staged or pending report names (the renderer writes it compact).
reported_key_id() {
  sed -n 's/.*"agentKeyId":"\\([0-9a-f]*\\)".*/\\1/p' "$1"
}

switch_agent_key() {
  local stage=$1 staged="$1/agent-credentials.curl" credentials="$root${AGENT_CREDENTIALS_PATH}" id status
  # Staged only when the desired state offers a key other than the one in use.
  [ -f "$staged" ] || return 0
  id=$(reported_key_id "$stage/agent-key-report.json")
  status=$(curl -sS --connect-timeout 5 --max-time 20 \\
    --aws-sigv4 "aws:amz:$region:s3" -K "$staged" \\
    -o /dev/null -w '%{http_code}' "$endpoint/$bucket/$key") || true
  if [ "$status" != 200 ]; then
    log "the offered agents' key $id cannot read $bucket/$key (HTTP \${status:-000}); keeping the current key"
    return 1
  fi
  install -m 0600 -o root -g root "$staged" "$credentials.new" || return 1
  mv "$credentials.new" "$credentials" || return 1
  log "agents' key switched to $id (a signed GET with it read $bucket/$key)"
}

keep_agent_key_report() {
  local stage=$1 name
  # The report last: it is what makes the next send_agent_key_report send.
  for name in agent-key-report.url agent-key-report.json; do
    [ -f "$stage/$name" ] || return 0
    install -m 0600 -o root -g root "$stage/$name" "$state_dir/$name.new"
    mv "$state_dir/$name.new" "$state_dir/$name"
  done
}

# Every run, the digest unchanged or not: a report that could not be sent is
# sent by a later run. The URL is a credential, so it reaches curl on stdin
# and appears in no log line.
send_agent_key_report() {
  local pending="$state_dir/agent-key-report.json" sent="$state_dir/agent-key-report.sent.json" response="$state_dir/agent-key-report.response" id status
  [ -f "$pending" ] || return 0
  cmp -s "$pending" "$sent" && return 0
  id=$(reported_key_id "$pending")
  status=$(printf 'url = "%s"\\n' "$(cat "$state_dir/agent-key-report.url")" \\
    | curl -sS --connect-timeout 5 --max-time 20 --fail-with-body -K - -T "$pending" -o "$response" -w '%{http_code}') || {
    log "reporting agents' key $id failed: HTTP \${status:-000} $(head -c 300 "$response" 2>/dev/null | tr -d '\\n')"
    rm -f "$response"
    return 1
  }
  rm -f "$response"
  cp "$pending" "$sent"
  log "reported agents' key $id"
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
  apply_authorized_keys "$stage"
  apply_tls_and_routes "$stage"
  apply_wireguard "$stage"
  # Last: a key that cannot read fails the run, and the next run tries it again.
  switch_agent_key "$stage" || return 1
  keep_agent_key_report "$stage"
  # Logged first: a run cut short between the two applies again next time, and logs then.
  log "applied desired state $digest: $summary"
  echo "$digest" >"$state_dir/applied.sha256"
}

# One run at a time: the timer and a hand-run agent never interleave.
exec 9>"$state_dir/lock"
flock 9
run
send_agent_key_report
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
