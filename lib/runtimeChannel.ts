/**
 * The runtime channel: how what may change after a node's first boot (peer
 * sets, certificates, route lists, operator peers, root's SSH keys) reaches
 * running nodes without touching their user-data, which Linode cannot change
 * in place.
 *
 * It is a bucket of its own, holding public material only:
 *
 * - `published/<stack>/<node>/<generation>.json`: what a node made at its
 *   first boot and publishes once through a presigned PUT (its WireGuard
 *   public key and its certificate signing requests). The generation in
 *   the key and the instance id inside are how a poll tells this node's
 *   material from a predecessor's, even after a bare instance replacement.
 * - `desired/<stack>/<node>.json`: what `pulumi up` wants the node to run
 *   (its WireGuard peers, its certificates, its NATS routes, root's SSH
 *   keys, the agents' key sealed to it, the nats-server release). `pulumi up` is
 *   the only writer; the node's agent fetches it, verifies it and applies it
 *   in place.
 * - `reports/<stack>/<node>/agent-key.json`: the agents' key a node reads
 *   with, written by its agent through a presigned PUT its desired state
 *   carries, once it has switched to that key (lib/agentKey.ts). The deploy
 *   revokes an old key only once every node reports the new one.
 * - `reports/<stack>/<node>/nats-server.json`: the nats-server version a NATS
 *   node runs and is healthy on, or the release it failed to move to and
 *   why, written by its agent through a presigned PUT its desired state
 *   carries (lib/natsRelease.ts). The upgrade wait reads it before the next
 *   node's desired state gets the new release.
 * - `rejoin/<stack>/<node>.json`: a NATS node an `up` replaced and has not
 *   yet seen current again (the rejoin wait writes it before waiting and
 *   removes it once the node is current). While it is there, the rollout
 *   guard refuses to move another node's image.
 *
 * Who can read what: nodes hold a key that can only read this bucket, and
 * nothing secret is ever written to it (desiredStateProblems refuses private
 * key material), so a node's key reads public material and nothing else.
 * Bootstrap objects (which carry secrets) live in the other bucket, which no
 * node holds a key for: each node fetches only its own object, through the
 * presigned GET in its own user-data. Pure: no Pulumi.
 */
import { AgentKeyOffer } from "./agentKey";
import { NatsServerOffer } from "./natsRelease";
import { ipv4InCidr, isIpv4 } from "./ip";
import { isWgPublicKey } from "./wgKey";

export const RUNTIME_FORMAT_VERSION = 1;

/** What a node publishes about itself at first boot. */
export interface PublishedMaterial {
    version: number;
    node: string;
    /** What cloud-init reports as the instance id: on Linode, the Linode id. */
    instanceId: string;
    wgPublicKey: string;
    /** PEM certificate signing requests by purpose (route, server); none for the hub. */
    certificateRequests: Record<string, string>;
}

export interface DesiredPeer {
    /** Shown as a comment on the node. */
    name: string;
    publicKey: string;
    /** ip:port to dial; absent for peers that dial in (operators). */
    endpoint?: string;
    allowedIps: string[];
    keepaliveSeconds?: number;
}

/** What `pulumi up` wants a node to run. */
export interface DesiredState {
    version: number;
    node: string;
    /** The instance this state was made for: an agent applies nothing meant for its predecessor. */
    instanceId: string;
    wireguard: { peers: DesiredPeer[] };
    /** Certificates by file name under the node's TLS directory (NATS nodes). */
    certificates?: Record<string, string>;
    /** host:port of every other NATS server (NATS nodes). */
    natsRoutes?: string[];
    /**
     * Root's SSH public keys (meshstack:sshAuthorizedKeys), one per line of
     * root's authorized_keys, which the agent owns. `pulumi up` writes it for
     * every node; a document without it (written before the agent owned the
     * file) leaves the file alone, and an empty list empties it.
     */
    authorizedKeys?: string[];
    /**
     * The agents' key this node should read with, sealed to its WireGuard
     * key, and where to report once it does (lib/agentKey.ts). A document
     * without it leaves the node's key as it is.
     */
    agentKey?: AgentKeyOffer;
    /**
     * The nats-server release this node runs (NATS nodes): the agent
     * installs it at its first apply and moves to it in place when it
     * changes, then reports through the offer's presigned PUT.
     */
    natsServer?: NatsServerOffer;
}

function keySegment(value: string, what: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value)) throw new Error(`${what} ${JSON.stringify(value)} cannot name a runtime object; allowed: letters, digits and . _ - (not first)`);
    return value;
}

export function publishedMaterialKey(stack: string, node: string, generation: string): string {
    return `published/${keySegment(stack, "stack")}/${keySegment(node, "node")}/${keySegment(generation, "generation")}.json`;
}

export function desiredStateKey(stack: string, node: string): string {
    return `desired/${keySegment(stack, "stack")}/${keySegment(node, "node")}.json`;
}

/** Where a node reports the agents' key it reads with (lib/agentKey.ts). */
export function agentKeyReportKey(stack: string, node: string): string {
    return `reports/${keySegment(stack, "stack")}/${keySegment(node, "node")}/agent-key.json`;
}

/** Where a NATS node reports the nats-server it runs, or the release that failed (lib/natsRelease.ts). */
export function natsServerReportKey(stack: string, node: string): string {
    return `reports/${keySegment(stack, "stack")}/${keySegment(node, "node")}/nats-server.json`;
}

export function rejoinPendingKey(stack: string, node: string): string {
    return `rejoin/${keySegment(stack, "stack")}/${keySegment(node, "node")}.json`;
}

/** What the rejoin wait leaves while a replaced node is not confirmed current. */
export interface RejoinPending {
    /** The node's server name. */
    node: string;
    /** The instance the node was replaced by. */
    instanceId: string;
    /** When the wait began (ISO 8601). */
    since: string;
}

const PRIVATE_KEY_MARKER = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

/**
 * Why a published document cannot be this node's material of this
 * generation; empty when it is. The poll keeps waiting while there are
 * reasons: a predecessor's document, or a half-written one, is "not yet".
 */
export function publishedMaterialProblems(doc: unknown, expected: { node: string; instanceId: string; requestNames: string[] }): string[] {
    if (typeof doc !== "object" || doc === null) return ["is not a JSON object"];
    const d = doc as Partial<PublishedMaterial>;
    const problems: string[] = [];
    if (d.version !== RUNTIME_FORMAT_VERSION) problems.push(`has version ${JSON.stringify(d.version)}, not ${RUNTIME_FORMAT_VERSION}`);
    if (d.node !== expected.node) problems.push(`is from node ${JSON.stringify(d.node)}, not ${expected.node}`);
    if (String(d.instanceId) !== expected.instanceId) problems.push(`is from instance ${JSON.stringify(d.instanceId)}, not ${expected.instanceId} (a previous instance's key)`);
    if (typeof d.wgPublicKey !== "string" || !isWgPublicKey(d.wgPublicKey)) problems.push("has no valid WireGuard public key");
    const requests = d.certificateRequests ?? {};
    for (const name of expected.requestNames) {
        const pem = (requests as Record<string, unknown>)[name];
        if (typeof pem !== "string" || !/^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE REQUEST-----\n?$/.test(pem)) {
            problems.push(`has no PEM certificate request ${JSON.stringify(name)}`);
        }
    }
    if (PRIVATE_KEY_MARKER.test(JSON.stringify(doc))) problems.push("holds private key material (refused; a node publishes public material only)");
    return problems;
}

/** Why a desired state may not be written to the channel; empty when it may. */
export function desiredStateProblems(state: DesiredState, subnet: string): string[] {
    const problems: string[] = [];
    if (PRIVATE_KEY_MARKER.test(JSON.stringify(state))) problems.push(`desired state of ${state.node} holds private key material; the runtime bucket is for public material only`);
    const keys = new Set<string>();
    for (const peer of state.wireguard.peers) {
        if (!isWgPublicKey(peer.publicKey)) problems.push(`peer ${peer.name} of ${state.node}: ${JSON.stringify(peer.publicKey)} is not a WireGuard public key`);
        if (keys.has(peer.publicKey)) problems.push(`peer ${peer.name} of ${state.node}: public key ${peer.publicKey} is listed twice`);
        keys.add(peer.publicKey);
        for (const allowed of peer.allowedIps) {
            const [ip] = allowed.split("/");
            if (!isIpv4(ip) || !ipv4InCidr(ip, subnet)) problems.push(`peer ${peer.name} of ${state.node}: allowed IPs ${allowed} are outside the mesh subnet ${subnet}`);
        }
    }
    return problems;
}
