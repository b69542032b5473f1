/**
 * Everything a NATS node runs, rendered as text: nats.conf, the 0600
 * cluster-secrets include, the systemd unit, the install script and the
 * cloud-config that ships them. Addresses, ports and paths are data, so the
 * tests render configs for 127.0.0.1 with random ports from these same
 * functions and run them on a real nats-server.
 */
import * as YAML from "yaml";
import { NatsNode } from "../lib/topology";
import { metadataGuardCloudConfig } from "./metadataGuard";
import { AGENT_TIMER_NAME } from "./agent/layout";
import { NODE_BOOTSTRAP_SCRIPT_PATH } from "./nodeBootstrap";

export { NATS_SERVER_RELEASE } from "../lib/natsRelease";

/** Where things live on a node. Tests point these at a temp directory. */
export interface NatsLayout {
    /** Holds nats.conf and cluster-secrets.conf (include paths are relative to nats.conf). */
    configDir: string;
    /** Certificates and keys. */
    tlsDir: string;
    /** JetStream store; nats-server keeps its files in a jetstream/ directory below it. */
    storeDir: string;
    /** The nats-server binary. */
    binary: string;
    user: string;
    group: string;
}

export const NATS_NODE_LAYOUT: NatsLayout = {
    configDir: "/etc/nats",
    tlsDir: "/etc/nats/tls",
    storeDir: "/var/lib/nats",
    binary: "/usr/local/bin/nats-server",
    user: "nats",
    group: "nats",
};

export const NATS_CONF_FILE = "nats.conf";
export const NATS_CLUSTER_SECRETS_FILE = "cluster-secrets.conf";
/** The route list, written by the agent from the desired state (it changes with the cluster). */
export const NATS_CLUSTER_ROUTES_FILE = "cluster-routes.conf";
/** The route password for the agent, which renders it into route URLs (root only). */
export const NATS_ROUTE_PASSWORD_PATH = "/etc/meshstack/nats-route-password";
export const NATS_UNIT_NAME = "nats-server.service";
export const NATS_PREPARE_SCRIPT = "/usr/local/sbin/meshstack-prepare-nats";
/** The route credentials' user name; the password is the secret. */
export const NATS_ROUTE_USER = "route";
/** The system account's one user, with its password (0600, included at the top of nats.conf). */
export const NATS_SYSTEM_ACCOUNT_FILE = "system-account.conf";
/** The deploy's user in the system account: it removes a leaving server from the JetStream meta group. */
export const NATS_SYSTEM_USER = "meshstack-system";
/** The user a client that sends no credentials (its certificate is its credential) logs in as, in the global account. */
export const NATS_CLIENT_USER = "meshstack-client";

export const NATS_TLS_FILES = {
    routeCa: "route-ca.crt",
    routeCert: "route.crt",
    routeKey: "route.key",
    clientCa: "client-ca.crt",
    serverCert: "server.crt",
    serverKey: "server.key",
} as const;

export function natsTlsPath(layout: NatsLayout, file: keyof typeof NATS_TLS_FILES): string {
    return `${layout.tlsDir}/${NATS_TLS_FILES[file]}`;
}

export function natsConfPath(layout: NatsLayout): string {
    return `${layout.configDir}/${NATS_CONF_FILE}`;
}

export interface JetStreamLimits {
    maxMemoryBytes: number;
    maxFileBytes: number;
}

export const NATS_DEFAULT_JETSTREAM_LIMITS: JetStreamLimits = { maxMemoryBytes: 256 * 1024 ** 2, maxFileBytes: 8 * 1024 ** 3 };

export interface NatsConfInput {
    clusterName: string;
    node: NatsNode;
    layout: NatsLayout;
    /** Address the client listener binds: 0.0.0.0 on a node (the firewall filters), 127.0.0.1 in tests. */
    clientHost: string;
    jetstream: JetStreamLimits;
}

/** A double-quoted nats.conf string. The conf parser has no escapes we rely on, so refuse what would need one. */
function quoted(value: string, what: string): string {
    if (!/^[A-Za-z0-9 ._:/@+=,-]*$/.test(value)) {
        throw new Error(`${what} ${JSON.stringify(value)} holds characters nats.conf would need escaped; allowed: letters, digits and . _ : / @ + = , - space`);
    }
    return `"${value}"`;
}

/**
 * The main config, without secrets: it can be shown in logs and diffs. The
 * cluster block includes cluster-secrets.conf for the route password, which
 * nats-server resolves relative to this file.
 */
/**
 * Lame-duck mode on stop: the server stops accepting clients, tells the
 * connected ones to move to another server (clients see `ldm` in INFO),
 * hands over its RAFT leaderships and closes clients spread over the
 * duration, instead of dropping them all at once. systemd waits for it.
 */
/** nats-server refuses a lame_duck_duration under 30 s. */
export const NATS_LAME_DUCK = { durationSeconds: 30, graceSeconds: 10 } as const;
/** How long systemd waits for a stopping server: lame duck plus room to flush JetStream. */
export const NATS_STOP_TIMEOUT_SECONDS = NATS_LAME_DUCK.durationSeconds + NATS_LAME_DUCK.graceSeconds + 30;

export function renderNatsConf(input: NatsConfInput): string {
    const { node, layout } = input;
    const tls = (file: keyof typeof NATS_TLS_FILES) => quoted(natsTlsPath(layout, file), "TLS path");
    return `# nats-server config for ${node.hostname} (rendered by meshstack; edits are overwritten).
server_name: ${quoted(node.hostname, "server_name")}

# Data plane: TLS with a client certificate from the client CA, always.
host: ${quoted(input.clientHost, "client host")}
port: ${node.ports.client}
tls {
  cert_file: ${tls("serverCert")}
  key_file: ${tls("serverKey")}
  ca_file: ${tls("clientCa")}
  verify: true
  timeout: 2
}

# Monitoring (/healthz, /routez, /jsz) never leaves the node.
http: ${quoted(`127.0.0.1:${node.ports.monitor}`, "monitor address")}

# SIGUSR2 (systemd's KillSignal) stops the server in lame-duck mode.
lame_duck_duration: "${NATS_LAME_DUCK.durationSeconds}s"
lame_duck_grace_period: "${NATS_LAME_DUCK.graceSeconds}s"

jetstream {
  store_dir: ${quoted(layout.storeDir, "store_dir")}
  max_memory_store: ${input.jetstream.maxMemoryBytes}
  max_file_store: ${input.jetstream.maxFileBytes}
}

# Accounts. A client proves itself with its certificate alone and sends no
# credentials: it logs in as the one global-account user, where every stream
# is. The system account keeps the server's default name, $SYS: the
# JetStream meta group keeps its RAFT state under the system account, and
# another name would start an empty meta group that knows no stream. Its one
# user (the deploy, which removes leaving servers from the meta group) has a
# password, in a 0600 file.
authorization {
  users = [ { user: ${quoted(NATS_CLIENT_USER, "client user")} } ]
}
no_auth_user: ${quoted(NATS_CLIENT_USER, "client user")}
include ${quoted(NATS_SYSTEM_ACCOUNT_FILE, "include path")}

cluster {
  name: ${quoted(input.clusterName, "cluster name")}
  # Routes only on the WireGuard address; the route CA is separate from the
  # client CA, so a client certificate never passes verification here.
  listen: ${quoted(`${node.wgAddress}:${node.ports.route}`, "route listen address")}
  # Servers would otherwise tell clients every peer's client URLs, built from
  # every interface address (WireGuard and private ones included), none of
  # which a client outside can reach or verify in the certificate. Clients
  # get their server list from the deploy's outputs instead.
  no_advertise: true
  tls {
    cert_file: ${tls("routeCert")}
    key_file: ${tls("routeKey")}
    ca_file: ${tls("routeCa")}
    verify: true
    timeout: 2
  }
  # authorization (accepting side) and routes (dialling side, credentials in
  # the URL) live in 0600 files readable by the nats user only. The routes
  # change with the cluster: the agent rewrites them and reloads (SIGHUP).
  include ${quoted(NATS_CLUSTER_SECRETS_FILE, "include path")}
  include ${quoted(NATS_CLUSTER_ROUTES_FILE, "include path")}
}
`;
}

function checkPassword(password: string, what = "the NATS cluster password", where = "route URLs and nats.conf"): void {
    if (!/^[A-Za-z0-9]{16,}$/.test(password)) {
        throw new Error(`${what} must be at least 16 letters and digits (it goes into ${where} unescaped)`);
    }
}

/**
 * The accepting side of routes: the authorization block checks every route,
 * explicit and discovered alike. Literal values, because `$VAR` is not
 * expanded inside quoted strings and an environment variable would end up
 * in the unit.
 */
export function renderNatsClusterSecrets(input: { password: string }): string {
    checkPassword(input.password);
    return `# Included from ${NATS_CONF_FILE} inside the cluster block. Mode 0600, owner nats.
authorization {
  user: ${quoted(NATS_ROUTE_USER, "route user")}
  password: ${quoted(input.password, "route password")}
  timeout: 2
}
`;
}

/** The system account's user and password, included at the top of nats.conf. */
export function renderNatsSystemAccount(input: { password: string }): string {
    checkPassword(input.password, "the NATS system account password", "nats.conf");
    return `# Included from ${NATS_CONF_FILE}. Mode 0600, owner nats.
accounts {
  $SYS {
    users = [ { user: ${quoted(NATS_SYSTEM_USER, "system user")}, password: ${quoted(input.password, "system account password")} } ]
  }
}
`;
}

/**
 * The dialling side: one route URL per other server, credentials in the
 * URL. The agent renders this same text on the node from the desired state
 * (cloudinit/agent.ts; a test holds the two together).
 */
export function renderNatsRoutes(input: { routes: string[]; password: string }): string {
    checkPassword(input.password);
    const routes = input.routes.map((route) => `  ${quoted(`nats-route://${NATS_ROUTE_USER}:${input.password}@${route}`, "route URL")}\n`);
    return `# Written by meshstack-agent from the desired state. Mode 0600, owner nats.\nroutes: [\n${routes.join("")}]\n`;
}

/** host:port of every other server's route listener: what a node dials. */
export function natsRouteAddresses(self: NatsNode, peers: NatsNode[]): string[] {
    return peers.filter((peer) => peer.index !== self.index).map((peer) => `${peer.wgAddress}:${peer.ports.route}`);
}

export interface NatsUnitInput {
    layout: NatsLayout;
    /** Units nats-server pulls in and starts after: the ones that bring up the WireGuard address routes bind to. */
    wants: string[];
}

/**
 * Debian's packaged unit has no Restart=; this one restarts always (also
 * while wg0 is not up yet and the route listener cannot bind), runs as the
 * nats user, and sees the file system read-only except its store.
 * No secret is in here or in argv: nats-server reads them from its config.
 */
export function renderNatsUnit(input: NatsUnitInput): string {
    const { layout } = input;
    const conf = natsConfPath(layout);
    const wants = input.wants.join(" ");
    return `[Unit]
Description=NATS JetStream server (meshstack)
Documentation=https://docs.nats.io/running-a-nats-service/introduction
# Wants=, not Requires=, on the WireGuard unit: when wg0 fails to come up,
# nats-server still starts, exits on the route listener it cannot bind, and
# Restart=always retries, each start pulling wg0 in again. Requires= would
# fail the start job instead (Restart= never retries that) and would stop
# NATS whenever wg0 is stopped or restarted.
Wants=network-online.target ${wants}
After=network-online.target ${wants}
StartLimitIntervalSec=0

[Service]
Type=simple
User=${layout.user}
Group=${layout.group}
ExecStartPre=${layout.binary} -t -c ${conf}
ExecStart=${layout.binary} -c ${conf}
ExecReload=/bin/kill -s HUP $MAINPID
Restart=always
RestartSec=2
# SIGUSR2 is lame-duck mode: clients are moved off gently, RAFT leaderships
# handed over, then the server exits (see lame_duck_duration in nats.conf).
KillSignal=SIGUSR2
TimeoutStopSec=${NATS_STOP_TIMEOUT_SECONDS}
LimitNOFILE=65536
UMask=0077
ReadWritePaths=${layout.storeDir}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
# The system calls an ordinary service makes; anything else fails with EPERM
# instead of killing the process, so a Go runtime probe cannot crash it.
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
# Other processes, and /proc beyond its own pids, are invisible to it.
ProtectProc=invisible
ProcSubset=pid
PrivateMounts=yes
CapabilityBoundingSet=
AmbientCapabilities=

[Install]
WantedBy=multi-user.target
`;
}

export interface NatsPrepareInput {
    layout: NatsLayout;
}

/**
 * Makes the JetStream store. It installs no nats-server: the release comes
 * with the desired state (DesiredState.natsServer), so that changing it
 * changes no user-data; the agent installs it at its first apply and starts
 * it with the first certificates.
 */
export function renderNatsPrepareScript(input: NatsPrepareInput): string {
    const { layout } = input;
    return `#!/usr/bin/env bash
# Prepares this node for nats-server (rendered by meshstack).
set -euo pipefail

install -d -o ${layout.user} -g ${layout.group} -m 0700 ${layout.storeDir}
systemctl daemon-reload
echo "meshstack-prepare-nats: store ready; the agent installs nats-server from the desired state and starts it with its first certificates"
`;
}

export interface NatsNodeFiles {
    natsConf: string;
    /** The authorization block (renderNatsClusterSecrets). */
    clusterSecrets: string;
    /** The route password again, for the agent that renders route URLs. */
    routePassword: string;
    /** The system account's user (renderNatsSystemAccount). */
    systemAccount: string;
}

export interface NatsCloudConfigInput {
    node: NatsNode;
    layout: NatsLayout;
    files: NatsNodeFiles;
    unit: string;
    prepareScript: string;
    /** The first-boot script (renderNodeBootstrapScript): keys, CSRs, wg0, publishing. */
    bootstrapScript: string;
    /** The agent's files (agentFiles). */
    agent: { path: string; content: string; permissions: string }[];
}

/**
 * The node's cloud-config: nothing in it changes after the first boot, so
 * nothing in it needs to. Peers, certificates and routes arrive through the
 * agent. Files owned by the nats user are deferred to the final stage:
 * cloud-init creates users after the early write_files run. runcmd runs in
 * order: the metadata guard, the first boot (keys, wg0, publishing), the
 * JetStream store, then the agent's timer.
 */
export function renderNatsCloudConfig(input: NatsCloudConfigInput): string {
    const { layout, files, node } = input;
    const owned = `${layout.user}:${layout.group}`;
    const file = (path: string, content: string, permissions: string, owner = "root:root", defer = owner !== "root:root") => ({
        path, content, permissions, owner, ...(defer ? { defer: true } : {}),
    });
    const guard = metadataGuardCloudConfig();
    const doc = {
        hostname: node.hostname,
        ...(node.dnsName ? { fqdn: node.dnsName } : {}),
        users: [
            "default",
            { name: layout.user, system: true, shell: "/usr/sbin/nologin", homedir: "/var/lib/nats", no_create_home: true, lock_passwd: true },
        ],
        write_files: [
            file(natsConfPath(layout), files.natsConf, "0640", `root:${layout.group}`),
            file(`${layout.configDir}/${NATS_CLUSTER_SECRETS_FILE}`, files.clusterSecrets, "0600", owned),
            file(`${layout.configDir}/${NATS_SYSTEM_ACCOUNT_FILE}`, files.systemAccount, "0600", owned),
            file(NATS_ROUTE_PASSWORD_PATH, `${files.routePassword}\n`, "0600"),
            file(`/etc/systemd/system/${NATS_UNIT_NAME}`, input.unit, "0644"),
            file(NATS_PREPARE_SCRIPT, input.prepareScript, "0700"),
            file(NODE_BOOTSTRAP_SCRIPT_PATH, input.bootstrapScript, "0700"),
            ...input.agent.map((f) => file(f.path, f.content, f.permissions)),
            ...guard.files.map((f) => file(f.path, f.content, f.permissions)),
        ],
        packages: guard.packages,
        runcmd: [...guard.runcmd, [NODE_BOOTSTRAP_SCRIPT_PATH], [NATS_PREPARE_SCRIPT], ["systemctl", "enable", "--now", AGENT_TIMER_NAME]],
    };
    return `#cloud-config\n${YAML.stringify(doc, { lineWidth: 0 })}`;
}
