/**
 * A NATS image change, rolled one node per `pulumi up`. A new image is a new
 * Linode instance with an empty disk: JetStream keeps a stream only while a
 * majority of its replicas survives, so replacing every node in one `up`
 * loses the data, and so does replacing the next node before the previous
 * one has caught up. The engine cannot order replacements across the
 * cluster's own recovery, so the rule is that one `up` changes the image of
 * at most one existing node; `meshstack:natsNodeImages` moves nodes to the
 * new image one by one, and `meshstack:natsImage` follows last.
 */

import { RejoinPending } from "./runtimeChannel";

/** Existing NATS nodes whose image one `up` may change. */
export const MAX_NATS_IMAGE_CHANGES_PER_UP = 1;

/** How meshstack:natsNodeImages names a node: its logical name in the program. */
export function natsNodeName(index: number): string {
    return `nats-${index}`;
}

export const NATS_NODE_IMAGE_FORMAT = '"nats-<index>=<image>", e.g. "nats-0=linode/debian13"';
const NODE_IMAGE_ENTRY = /^nats-(0|[1-9]\d*)=(.*)$/;

export type NodeImagesResult = { ok: true; value: Record<number, string> } | { ok: false; error: string };

/** meshstack:natsNodeImages as image by node index; every bad entry reported at once. */
export function parseNatsNodeImages(entries: string[], nodeCount: number, isImage: (value: string) => boolean): NodeImagesResult {
    const images: Record<number, string> = {};
    const problems: string[] = [];
    for (const entry of entries) {
        const match = NODE_IMAGE_ENTRY.exec(entry);
        if (!match || !isImage(match[2])) {
            problems.push(`${JSON.stringify(entry)} is not ${NATS_NODE_IMAGE_FORMAT}`);
            continue;
        }
        const index = Number(match[1]);
        if (index >= nodeCount) problems.push(`${JSON.stringify(entry)} names ${natsNodeName(index)}, but natsNodeCount ${nodeCount} has ${natsNodeName(0)} to ${natsNodeName(nodeCount - 1)} only`);
        else if (images[index] !== undefined) problems.push(`${JSON.stringify(entry)} sets ${natsNodeName(index)} a second time`);
        else images[index] = match[2];
    }
    return problems.length ? { ok: false, error: problems.join("; ") } : { ok: true, value: images };
}

/** Each node's image: its own entry, else natsImage. */
export function natsNodeImage(index: number, clusterImage: string, nodeImages: Record<number, string>): string {
    return nodeImages[index] ?? clusterImage;
}

/** Existing nodes whose image this `up` changes (each a replacement), in index order. */
export function natsImageChanges(olds: Record<string, string>, news: Record<string, string>): string[] {
    return Object.keys(news).filter((node) => olds[node] !== undefined && olds[node] !== news[node]).sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
}

/**
 * Why this `up` may not change the images it changes; undefined when it may.
 * `olds` is the image of each node that exists (from the last `up`), `news`
 * the image of each node this `up` declares. Nodes new to the cluster and
 * nodes removed from it do not count: only a replacement empties a replica.
 */
export function natsImageRolloutProblem(olds: Record<string, string>, news: Record<string, string>): string | undefined {
    const changed = natsImageChanges(olds, news);
    if (changed.length <= MAX_NATS_IMAGE_CHANGES_PER_UP) return undefined;
    const [first, ...rest] = changed;
    const sameBefore = new Set(changed.map((node) => olds[node])).size === 1;
    const keep = sameBefore
        ? `keep meshstack:natsImage at ${olds[first]} and set meshstack:natsNodeImages to ["${first}=${news[first]}"]`
        : `give ${rest.join(", ")} their current images (${rest.map((node) => `${node}=${olds[node]}`).join(", ")}) in meshstack:natsNodeImages and change ${first} alone`;
    return (
        `this up would change the image of ${changed.length} NATS nodes at once (${changed.map((node) => `${node}: ${olds[node]} -> ${news[node]}`).join(", ")}). ` +
        "Each is replaced by a new instance with an empty disk, and JetStream keeps its data only while a majority of every stream's replicas survives. " +
        `Change one node per up: ${keep}, run pulumi up, and wait until JetStream is current on every node ` +
        "(`curl -fsS http://127.0.0.1:8222/healthz` answers ok on each, over break-glass SSH) before moving the next node; set meshstack:natsImage last, when it changes nothing"
    );
}

/**
 * The rejoin wait: after an `up` creates or replaces a NATS node it may
 * wait (meshstack:natsRejoinTimeoutSeconds) until that node serves
 * JetStream again and every stream replica it holds is current, so the
 * `up` that rolled one node ends only when the next may go. Shorter than a
 * minute is less than one node's boot.
 */
export const MIN_NATS_REJOIN_TIMEOUT_SECONDS = 60;
export const MAX_NATS_REJOIN_TIMEOUT_SECONDS = 7200;

/** One stream's placement as its leader reports it (STREAM.INFO's cluster block). */
export interface StreamPlacement {
    stream: string;
    leader?: string;
    replicas: { name: string; current: boolean; offline?: boolean; lag?: number }[];
    /** How many replicas it is configured with (num_replicas). */
    configuredReplicas?: number;
    /** Why its info did not come (the stream offline, no leader yet): where its replicas are is then unknown. */
    unavailable?: string;
}

/** Streams with a replica on `node` (its leader or a follower). */
export function streamsHeldBy(node: string, placements: StreamPlacement[]): string[] {
    return placements.filter((p) => p.leader === node || p.replicas.some((r) => r.name === node)).map((p) => p.stream).sort();
}

/**
 * Why `node` is not caught up yet, one reason per stream it holds that is
 * behind; empty when every replica on it is current. A stream without a
 * leader counts as behind: nothing can be confirmed current in it; so does
 * one whose placement could not be read, which may be on the node.
 */
export function streamsBehind(node: string, placements: StreamPlacement[]): string[] {
    const behind: string[] = [];
    for (const p of [...placements].sort((a, b) => a.stream.localeCompare(b.stream))) {
        if (p.unavailable !== undefined) {
            behind.push(`${p.stream}: no stream info (${p.unavailable})`);
            continue;
        }
        // The leader is not among its stream's replicas: a node that leads has nothing to catch up.
        const replica = p.replicas.find((r) => r.name === node);
        if (!replica) continue;
        if (!p.leader) behind.push(`${p.stream}: no leader`);
        else if (replica.offline) behind.push(`${p.stream}: the replica on ${node} is offline`);
        else if (!replica.current) behind.push(`${p.stream}: the replica on ${node} is not current${replica.lag ? ` (${replica.lag} behind)` : ""}`);
    }
    return behind;
}

/** A rejoin mark as the guard found it, under the node's name in the program (natsNodeName). */
export type PendingRejoin = RejoinPending & { name: string };

/**
 * Why this `up` may not move `moving` to a new image while earlier
 * replacements are not confirmed current (their rejoin waits failed or never
 * ended); undefined when it may. A node moved again itself does not count:
 * it is empty already, and replacing it loses nothing more.
 */
export function rejoinPendingProblem(moving: string[], pending: PendingRejoin[]): string | undefined {
    const others = pending.filter((p) => !moving.includes(p.name)).sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
    if (!moving.length || !others.length) return undefined;
    return (
        `this up would replace ${moving.join(", ")} for its new image, but ${others.map((p) => `${p.name} (${p.node}, replaced by instance ${p.instanceId} at ${p.since})`).join(", ")} ` +
        `${others.length === 1 ? "has" : "have"} not been seen current since: ${others.length === 1 ? "its rejoin wait" : "their rejoin waits"} failed or never ended. ` +
        `Run pulumi up with the images as they were until ${others.map((p) => `${p.name}-rejoin`).join(", ")} ${others.length === 1 ? "passes" : "pass"}, then move the next node`
    );
}

/**
 * The stream guard: a NATS node that holds the only replica of a stream (an
 * R1 stream placed on it) takes that stream with it when it is replaced or
 * removed, and JetStream cannot bring it back. meshstack:natsAcceptStreamLoss
 * names the streams whose loss the stack accepts; EVERY_STREAM accepts any
 * (a cluster taken down on purpose, or one the deploy cannot reach).
 */
export const EVERY_STREAM = "*";
/** A JetStream stream name: no whitespace, no subject wildcards or separators, no path separators. */
export const STREAM_NAME = /^[^\s.*>/\\]{1,255}$/;

/** An entry of meshstack:natsAcceptStreamLoss: a stream name, or EVERY_STREAM. The config and the guard both check with it. */
export function isAcceptedStreamEntry(value: unknown): boolean {
    return value === EVERY_STREAM || (typeof value === "string" && STREAM_NAME.test(value));
}

/** What removing or replacing `node` would lose that the stack has not accepted. */
export interface StreamLoss {
    /** Streams whose only replica is on the node. */
    lost: string[];
    /** Streams whose placement could not be read, each with why: any of them may be such a stream. */
    unknown: string[];
}

/**
 * Streams whose only replica is on `node`: it leads them and no other server
 * holds one. STREAM.INFO lists the leader's followers as `replicas`, so none
 * means the leader's copy is the only one; a placement not read has no leader.
 */
export function streamsOnlyOn(node: string, placements: StreamPlacement[]): string[] {
    return placements.filter((p) => p.leader === node && p.replicas.length === 0).map((p) => p.stream).sort();
}

/** The loss `node` would take with it, less what `accepted` (meshstack:natsAcceptStreamLoss) accepts. */
export function streamLoss(node: string, placements: StreamPlacement[], accepted: string[]): StreamLoss {
    if (accepted.includes(EVERY_STREAM)) return { lost: [], unknown: [] };
    const open = placements.filter((p) => !accepted.includes(p.stream)).sort((a, b) => a.stream.localeCompare(b.stream));
    return {
        lost: streamsOnlyOn(node, open),
        unknown: open.filter((p) => p.unavailable !== undefined).map((p) => `${p.stream} (${p.unavailable})`),
    };
}

/**
 * Why `name` (server `node`) may not be deleted; undefined when it may.
 * `loss` is what streamLoss found once the guard stopped waiting.
 */
export function streamLossProblem(name: string, node: string, loss: StreamLoss): string | undefined {
    if (!loss.lost.length && !loss.unknown.length) return undefined;
    const named = [...loss.lost, ...loss.unknown.map((u) => u.slice(0, u.indexOf(" (")))];
    const what = [
        ...(loss.lost.length ? [`${loss.lost.join(", ")}: the only replica of ${loss.lost.length === 1 ? "this stream is" : "each is"} on ${node}`] : []),
        ...(loss.unknown.length ? [`${loss.unknown.join(", ")}: where ${loss.unknown.length === 1 ? "its replicas are" : "their replicas are"} could not be read, so ${loss.unknown.length === 1 ? "it" : "each"} may be one too`] : []),
    ].join("; ");
    return (
        `refused: NATS node ${name} (${node}) is about to be deleted (replaced, or removed by a lower meshstack:natsNodeCount), ` +
        `and JetStream would lose streams with it: ${what}. Nothing has been deleted. ` +
        `To keep them, give each more replicas (\`nats stream edit <stream> --replicas 3\`) or move them off ${node}, then run pulumi up again. ` +
        `To lose them on purpose, add ${named.map((s) => JSON.stringify(s)).join(", ")} to meshstack:natsAcceptStreamLoss and run pulumi up again`
    );
}
