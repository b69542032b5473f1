/**
 * Where the agent lives on a node: its files, its systemd units, and the
 * variable that relocates every one of its paths. A module of its own so
 * that what only names the agent (the nodes' cloud-configs in nats.ts and
 * wgCache.ts, the tests, the bench) does not import its renderers: those
 * import nats.ts for the NATS layout, and nats.ts importing them back was a
 * circle.
 */
export const AGENT_SCRIPT_PATH = "/usr/local/sbin/meshstack-agent";
export const AGENT_RENDER_PATH = "/usr/local/lib/meshstack/agent-render.py";
export const AGENT_CONFIG_PATH = "/etc/meshstack/agent.conf";
export const AGENT_CREDENTIALS_PATH = "/etc/meshstack/agent-credentials.curl";
export const AGENT_STATE_DIR = "/var/lib/meshstack-agent";
export const AGENT_LOG_PATH = "/var/log/meshstack-agent.log";
export const AGENT_UNIT_NAME = "meshstack-agent.service";
export const AGENT_TIMER_NAME = "meshstack-agent.timer";
/** Root's SSH keys, which the agent owns: written from the desired state's authorizedKeys. */
export const ROOT_AUTHORIZED_KEYS_PATH = "/root/.ssh/authorized_keys";
/** Relocates every path the agent touches; tests set it to a temp dir, nodes leave it unset. */
export const AGENT_ROOT_ENV = "MESHSTACK_AGENT_ROOT";
