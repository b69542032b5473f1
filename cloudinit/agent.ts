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
 * - the nats-server release (lib/natsRelease.ts): installed at the first
 *   apply, before nats-server first starts; when the desired version differs
 *   from the installed one, moved to in place (download, checksum, a config
 *   check with the new binary, an atomic swap, a restart through lame duck,
 *   a wait until /healthz answers 200 on the new version), and moved back
 *   if any step fails. The outcome is reported through the release's
 *   presigned PUT, on this run or a later one;
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
import { NatsLayout, NATS_CLUSTER_ROUTES_FILE, NATS_NODE_LAYOUT, NATS_ROUTE_PASSWORD_PATH, NATS_ROUTE_USER, NATS_STOP_TIMEOUT_SECONDS, NATS_TLS_FILES, NATS_UNIT_NAME, natsConfPath } from "./nats";
import { NATS_SERVER_VERSION_PATTERN } from "../lib/natsRelease";
import { NATS_DEFAULT_PORTS } from "../lib/topology";
import { INSTANCE_ID_ENV } from "./nodeBootstrap";
import { WG_CONF_PATH, WG_INTERFACE, WG_PRIVATE_KEY_PATH, WG_QUICK_UNIT } from "./wgMesh";

/**
 * Seconds between runs. A run that finds the document unchanged costs one
 * GET, so a node costs 3600 / interval GETs an hour (see bench/agent.ts).
 */
export const AGENT_INTERVAL_SECONDS = 10;

/** How long each slow step of a nats-server move may take on the node. */
export const NATS_SERVER_MOVE_LIMITS = {
    /** The release tarball's download (curl --max-time). */
    downloadSeconds: 300,
    /** From a restart until /healthz answers 200 on the new version: JetStream meta, streams and consumers on this server current again. */
    healthySeconds: 300,
} as const;
/** A run that moves no nats-server: fetch, render, install, reload, report. */
const AGENT_RUN_BASE_SECONDS = 120;
/**
 * The agent unit's TimeoutStartSec: a run that downloads a release, restarts
 * into it (lame duck first: NATS_STOP_TIMEOUT_SECONDS), waits for it, and
 * then moves back the same way. systemd kills a run that takes longer.
 */
export const AGENT_RUN_TIMEOUT_SECONDS = AGENT_RUN_BASE_SECONDS + NATS_SERVER_MOVE_LIMITS.downloadSeconds + 2 * (NATS_STOP_TIMEOUT_SECONDS + NATS_SERVER_MOVE_LIMITS.healthySeconds);
/**
 * How long the deploy waits for a node to report a release it was given:
 * the run in progress when the desired state was written, the timer's
 * interval, then one whole run that moves nats-server.
 */
export const NATS_SERVER_MOVE_REPORT_DEADLINE_SECONDS = AGENT_RUN_TIMEOUT_SECONDS + AGENT_RUN_BASE_SECONDS + AGENT_INTERVAL_SECONDS;

export interface AgentNats {
    layout: NatsLayout;
    /** Files of the desired state's `certificates` and the private key each must match. */
    certificates: { file: string; matchesKey?: string; issuer?: string }[];
    routeUser: string;
    /** Root-only file holding the route password (from user-data). */
    routePasswordPath: string;
    /** nats-server's monitoring port on 127.0.0.1: where the agent reads /healthz and the running version. */
    monitorPort: number;
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
    monitorPort: NATS_DEFAULT_PORTS.monitor,
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
        `NATS_SERVER_VERSION_PATTERN = ${JSON.stringify(NATS_SERVER_VERSION_PATTERN.source)}`,
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

/**
 * MESHSTACK_AGENT_NATS_RESTART: a command that stands in for `systemctl
 * restart nats-server.service` (a stop through lame duck, the unit's
 * ExecStartPre config check, a start) where there is no systemd, in tests
 * that move real nats-server binaries. Nodes leave it unset.
 */
export const AGENT_NATS_RESTART_ENV = "MESHSTACK_AGENT_NATS_RESTART";

/**
 * The nats-server release, in bash: install it (first apply), move to
 * another (an upgrade or a downgrade: the same steps), move back when the
 * new one fails, report. A failed move does not fail the run: the node
 * stays on its release, the rest of the desired state still applies, and
 * the release that failed is recorded so that later runs (a renewed
 * certificate rewrites the desired state) do not try it again; a new
 * desired release is tried.
 */
function natsServerFunctions(nats: AgentNats): string {
    const { layout } = nats;
    const health = `http://127.0.0.1:${nats.monitorPort}`;
    return `readonly nats_binary=${shellQuote(layout.binary)}
readonly nats_conf="$root${natsConfPath(layout)}"
readonly nats_failed_record="$state_dir/nats-server-failed"

nats_installed_version() {
  "$nats_binary" --version 2>/dev/null | sed -n 's/^nats-server: \\(v[^ ]*\\)$/\\1/p'
}

# What identifies a release: its version, URL and checksums as staged.
nats_release_id() {
  cat "$1/nats-server.version" "$1/nats-server.url" "$1/nats-server.sha256.amd64" "$1/nats-server.sha256.arm64" | sha256sum | cut -d' ' -f1
}

# Downloads the staged release, checks this architecture's checksum before
# unpacking, and leaves its binary at $nats_binary.new. On failure prints
# why, on one line, for the report.
fetch_nats_server() {
  local stage=$1 version arch sha work
  version=$(cat "$stage/nats-server.version")
  arch=$(dpkg --print-architecture)
  case "$arch" in
    amd64|arm64) ;;
    *) echo "no checksum of nats-server $version for architecture $arch (allowed: amd64, arm64)"; return 1 ;;
  esac
  sha=$(cat "$stage/nats-server.sha256.$arch")
  work=$(mktemp -d "$state_dir/nats-server-release.XXXXXX")
  # The URL may be a mirror's signed one: it reaches curl on stdin, never argv or the log.
  if ! printf 'url = "%s"\\n' "$(sed "s/{arch}/$arch/g" "$stage/nats-server.url")" \\
      | curl -sS --fail --location --retry 3 --retry-delay 2 --connect-timeout 10 --max-time ${NATS_SERVER_MOVE_LIMITS.downloadSeconds} -K - -o "$work/release.tar.gz" 2>>"$log_file"; then
    rm -rf "$work"; echo "the download of nats-server $version for $arch failed (curl's error is in the agent log)"; return 1
  fi
  if ! echo "$sha  $work/release.tar.gz" | sha256sum --check --strict --status; then
    rm -rf "$work"; echo "the nats-server $version tarball for $arch does not match its sha256 $sha; nothing was unpacked"; return 1
  fi
  local binary="nats-server-$version-linux-$arch/nats-server"
  if ! tar -xzf "$work/release.tar.gz" -C "$work" "$binary" 2>>"$log_file"; then
    rm -rf "$work"; echo "the nats-server $version tarball holds no $binary"; return 1
  fi
  install -m 0755 -o root -g root "$work/$binary" "$nats_binary.new"
  rm -rf "$work"
  if [ "$("$nats_binary.new" --version 2>/dev/null)" != "nats-server: $version" ]; then
    rm -f "$nats_binary.new"; echo "the nats-server $version tarball's binary does not report $version"; return 1
  fi
}

# The first apply: nothing runs yet, so a failure fails the run and the next run tries again.
install_nats_server() {
  local stage=$1 why
  why=$(fetch_nats_server "$stage") || { log "nats-server not installed: $why"; return 1; }
  mv "$nats_binary.new" "$nats_binary"
  nats_installed_now=1
  log "nats-server $(cat "$stage/nats-server.version") installed"
}

# The one way this script restarts nats-server (${AGENT_NATS_RESTART_ENV}: see cloudinit/agent.ts).
restart_nats_server() {
  if [ -n "\${${AGENT_NATS_RESTART_ENV}:-}" ]; then
    # Without the run's lock: a server it starts would hold it, and every later run would wait.
    "$${AGENT_NATS_RESTART_ENV}" 9>&-
  else
    systemctl restart ${NATS_UNIT_NAME}
  fi
}

# Until /healthz answers 200 (in a cluster: JetStream meta, and every stream
# and consumer on this server, current) and the running server is $1.
wait_nats_healthy() {
  local want=$1 deadline=$((SECONDS + ${NATS_SERVER_MOVE_LIMITS.healthySeconds})) next_line=$SECONDS code running body
  while :; do
    code=$(curl -s -o "$state_dir/healthz" -w '%{http_code}' --max-time 5 ${health}/healthz) || code=000
    running=$(curl -s --max-time 5 ${health}/varz | python3 -c 'import json, sys; print("v" + json.load(sys.stdin)["version"])' 2>/dev/null) || running=""
    if [ "$code" = 200 ] && [ "$running" = "$want" ]; then
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "nats-server $want: not healthy within ${NATS_SERVER_MOVE_LIMITS.healthySeconds}s (/healthz HTTP $code, running \${running:-nothing})"
      return 1
    fi
    if [ "$SECONDS" -ge "$next_line" ]; then
      body=$(head -c 200 "$state_dir/healthz" 2>/dev/null | tr -d '\\n')
      log "waiting for nats-server $want healthy: /healthz HTTP $code \${body}, running \${running:-nothing}; $((deadline - SECONDS))s left"
      next_line=$((SECONDS + 10))
    fi
    sleep 1
  done
}

# The report the node would send: the version it runs ($1), healthy, or with the one that failed ($2) and why ($3).
nats_report_json() {
  python3 -c 'import json, sys
node, instance, runs, failed, reason = sys.argv[1:6]
report = {"version": 1, "node": node, "instanceId": instance, "natsServer": runs}
report.update({"failed": failed, "reason": reason} if failed else {"healthy": True})
print(json.dumps(report, separators=(",", ":")))' "$node" "$(instance_id)" "$1" "\${2:-}" "\${3:-}"
}

keep_nats_server_report() {
  local stage=$1
  shift
  install -m 0600 -o root -g root "$stage/nats-server-report.url" "$state_dir/nats-server-report.url.new"
  mv "$state_dir/nats-server-report.url.new" "$state_dir/nats-server-report.url"
  # The report last: it is what makes the next send_report send it.
  nats_report_json "$@" >"$state_dir/nats-server-report.json.new"
  mv "$state_dir/nats-server-report.json.new" "$state_dir/nats-server-report.json"
}

nats_move_failed() {
  local stage=$1 runs=$2 failed=$3 reason=$4
  log "nats-server $failed FAILED: $reason; running $runs. Not tried again until the desired release changes (to retry it: rm $nats_failed_record $state_dir/applied.sha256, then run the agent)"
  nats_release_id "$stage" >"$nats_failed_record"
  keep_nats_server_report "$stage" "$runs" "$failed" "$reason"
}

move_nats_server() {
  local stage=$1 from=$2 to why back
  to=$(cat "$stage/nats-server.version")
  log "nats-server: moving from $from to $to"
  why=$(fetch_nats_server "$stage") || { nats_move_failed "$stage" "$from" "$to" "$why"; return 0; }
  if ! runuser -u ${layout.user} -- "$nats_binary.new" -t -c "$nats_conf" >>"$log_file" 2>&1; then
    rm -f "$nats_binary.new"
    nats_move_failed "$stage" "$from" "$to" "nats-server $to refuses this node's nats.conf (nats-server -t; its output is in the agent log)"
    return 0
  fi
  ln -f "$nats_binary" "$nats_binary.previous"
  mv "$nats_binary.new" "$nats_binary"
  log "nats-server $to in place ($from kept as $nats_binary.previous); restarting it through lame duck"
  if restart_nats_server >>"$log_file" 2>&1 && wait_nats_healthy "$to"; then
    log "nats-server $to healthy (was $from)"
    rm -f "$nats_failed_record"
    keep_nats_server_report "$stage" "$to"
    return 0
  fi
  log "nats-server $to did not come up healthy; moving back to $from"
  mv "$nats_binary.previous" "$nats_binary"
  if restart_nats_server >>"$log_file" 2>&1 && wait_nats_healthy "$from"; then
    back="back on $from, healthy"
  else
    back="back on $from, which is NOT healthy either"
  fi
  nats_move_failed "$stage" "$from" "$to" "nats-server $to did not answer /healthz 200 within ${NATS_SERVER_MOVE_LIMITS.healthySeconds}s of its restart; $back"
}

# Moves to the desired release when it differs from the installed one;
# reports the release it runs once, when healthy, when it does not.
converge_nats_server() {
  local stage=$1 want installed
  [ -f "$stage/nats-server.version" ] || return 0
  want=$(cat "$stage/nats-server.version")
  installed=$(nats_installed_version)
  # A server started in this run is the publish poll's and the rejoin wait's to watch.
  [ "\${nats_installed_now:-0}" = 1 ] && return 0
  if [ "\${MESHSTACK_AGENT_SKIP_SERVICES:-}" = 1 ] && [ -z "\${${AGENT_NATS_RESTART_ENV}:-}" ]; then
    log "MESHSTACK_AGENT_SKIP_SERVICES=1: not moving or checking nats-server ($installed installed, $want desired)"
    return 0
  fi
  if [ "$installed" = "$want" ]; then
    [ "$(nats_report_json "$want")" = "$(cat "$state_dir/nats-server-report.json" 2>/dev/null)" ] && return 0
    if wait_nats_healthy "$want"; then
      keep_nats_server_report "$stage" "$want"
    fi
    return 0
  fi
  if [ "$(nats_release_id "$stage")" = "$(cat "$nats_failed_record" 2>/dev/null)" ]; then
    log "nats-server $want failed on this node before (see above); staying on $installed until the desired release changes (to retry it: rm $nats_failed_record $state_dir/applied.sha256, then run the agent)"
    return 0
  fi
  move_nats_server "$stage" "$installed"
}

# The nats-server report as its log line names it (send_report, every run).
describe_nats_server_report() {
  echo "nats-server: $(cat "$1")"
}

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
  # The first apply installs the release before nats-server first starts.
  if [ ! -x "$nats_binary" ] && [ -f "$stage/nats-server.version" ]; then
    install_nats_server "$stage" || return 1
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

${nats ? natsServerFunctions(nats) : ""}apply_tls_and_routes() {
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
  # The report last: it is what makes the next send_report send it.
  for name in agent-key-report.url agent-key-report.json; do
    [ -f "$stage/$name" ] || return 0
    install -m 0600 -o root -g root "$stage/$name" "$state_dir/$name.new"
    mv "$state_dir/$name.new" "$state_dir/$name"
  done
}

# send_report STEM DESCRIBE: PUTs $state_dir/STEM.json through the presigned
# URL in STEM.url unless that report was sent before, and logs "reported" and
# what the DESCRIBE function says of it (asked only when it is sent). Every
# run, the digest unchanged or not: a report that could not be sent is sent
# by a later run. The URL is a credential, so it reaches curl on stdin and
# appears in no log line.
send_report() {
  local stem=$1 describe=$2
  local pending="$state_dir/$stem.json" sent="$state_dir/$stem.sent.json" response="$state_dir/$stem.response" what status
  [ -f "$pending" ] || return 0
  cmp -s "$pending" "$sent" && return 0
  what=$("$describe" "$pending")
  status=$(printf 'url = "%s"\\n' "$(cat "$state_dir/$stem.url")" \\
    | curl -sS --connect-timeout 5 --max-time 20 --fail-with-body -K - -T "$pending" -o "$response" -w '%{http_code}') || {
    log "reporting $what failed: HTTP \${status:-000} $(head -c 300 "$response" 2>/dev/null | tr -d '\\n')"
    rm -f "$response"
    return 1
  }
  rm -f "$response"
  cp "$pending" "$sent"
  log "reported $what"
}
describe_agent_key_report() {
  echo "agents' key $(reported_key_id "$1")"
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
${nats ? '  # After the routes and peers: a restarted server finds its cluster.\n  converge_nats_server "$stage"\n' : ""}  # Last: a key that cannot read fails the run, and the next run tries it again.
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
${nats ? "send_report nats-server-report describe_nats_server_report || true\n" : ""}send_report agent-key-report describe_agent_key_report
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
TimeoutStartSec=${AGENT_RUN_TIMEOUT_SECONDS}
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
