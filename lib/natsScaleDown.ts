/**
 * Scale-down without loss: a NATS node that leaves the cluster (a lower
 * meshstack:natsNodeCount) first gives up every stream replica it holds
 * (peer-removed from each stream, JetStream places a new replica on a server
 * that stays), and only once every such stream is whole and current
 * elsewhere is it removed from the JetStream meta group; then its instance
 * is deleted. These are the decisions; providers/natsScaleDown.ts acts on them.
 */

import { EVERY_STREAM, StreamPlacement, streamsHeldBy, streamsOnlyOn } from "./natsRollout";

/** A node of the cluster as the scale-down names it: nats-<index> in the program, its server_name in JetStream. */
export interface NatsMember {
    name: string;
    node: string;
}

function indexOf(member: NatsMember): number {
    return Number(member.name.slice(member.name.lastIndexOf("-") + 1));
}

/** The members of the last `up` that this `up` no longer declares, highest index first: the order they leave in, one at a time. */
export function leavingMembers(olds: NatsMember[], news: NatsMember[]): NatsMember[] {
    const staying = new Set(news.map((m) => m.node));
    return olds.filter((m) => !staying.has(m.node)).sort((a, b) => indexOf(b) - indexOf(a));
}

function who(member: NatsMember): string {
    return `${member.name} (${member.node})`;
}

/**
 * The staying members whose instance this `up` replaces (a new instance id,
 * or one not known yet: a preview's placeholder differs from every id), by
 * the ids in the same order as each side's members. Nothing without the last
 * `up`'s ids (a state from before they were kept).
 */
export function replacedMembers(olds: NatsMember[], oldIds: string[] | undefined, news: NatsMember[], newIds: string[]): NatsMember[] {
    if (!oldIds) return [];
    const before = new Map(olds.map((m, i) => [m.node, oldIds[i]]));
    return news.filter((m, i) => before.has(m.node) && newIds[i] !== before.get(m.node));
}

/**
 * Why nodes cannot leave in the same `up` that replaces others; undefined
 * when they can. A leaving node's replicas can only move to servers that are
 * there, a replaced server is not until its new instance has booted and
 * joined, and it joins through the desired states, which are written only
 * once the scale-down is done (MeshRuntimeArgs.after): each would wait for
 * the other until the deadline.
 */
export function replacedWhileLeavingProblem(leaving: NatsMember[], replaced: NatsMember[]): string | undefined {
    if (!leaving.length || !replaced.length) return undefined;
    return (
        `refused: this up removes NATS ${leaving.length === 1 ? "node" : "nodes"} ${leaving.map(who).join(", ")} (meshstack:natsNodeCount lowered) ` +
        `and replaces ${replaced.map(who).join(", ")}; the leaving nodes' replicas can only move to servers that are there. Nothing has been moved or deleted. ` +
        "To go on, do one per up: set meshstack:natsNodeCount back for this up, or leave the replaced nodes as they are (their image, or --replace) until the scale-down is done"
    );
}

/**
 * Why removing `leaving` from the cluster, `remaining` servers staying, cannot
 * be done without loss; undefined when it can. Refused: a stream with more
 * replicas than servers would remain (JetStream has nowhere to put them), a
 * stream whose only replica is on a leaving node (an R1 stream moved is an
 * empty stream elsewhere), and a stream whose placement cannot be read (it
 * may be either). meshstack:natsAcceptStreamLoss (`accepted`) lets the last
 * two go; the first is never a loss the stack can accept: the stream stays,
 * one replica short forever.
 */
export function scaleDownProblem(leaving: NatsMember[], remaining: number, placements: StreamPlacement[], accepted: string[]): string | undefined {
    if (!leaving.length) return undefined;
    const sorted = [...placements].sort((a, b) => a.stream.localeCompare(b.stream));
    const open = accepted.includes(EVERY_STREAM) ? [] : sorted.filter((p) => !accepted.includes(p.stream));
    const tooWide = sorted.filter((p) => (p.configuredReplicas ?? 0) > remaining);
    const onlyOn = leaving.flatMap((m) => streamsOnlyOn(m.node, open).map((stream) => `${stream}: the only replica of this stream is on ${m.node}`));
    const unknown = open.filter((p) => p.unavailable !== undefined);
    if (!tooWide.length && !onlyOn.length && !unknown.length) return undefined;
    const reasons = [
        ...tooWide.map((p) => `${p.stream}: ${p.configuredReplicas} replicas, and ${remaining} servers would remain`),
        ...onlyOn.sort(),
        ...unknown.map((p) => `${p.stream}: where its replicas are could not be read (${p.unavailable}), so it may be on a leaving node alone`),
    ];
    const ways = [
        ...(tooWide.length ? [`give ${tooWide.map((p) => p.stream).join(", ")} at most ${remaining} replicas (\`nats stream edit <stream> --replicas ${remaining}\`)`] : []),
        ...(onlyOn.length || unknown.length ? ["give each R1 stream more replicas (`nats stream edit <stream> --replicas 3`), or add the streams to lose to meshstack:natsAcceptStreamLoss"] : []),
    ];
    return (
        `refused: this up removes NATS ${leaving.length === 1 ? "node" : "nodes"} ${leaving.map(who).join(", ")} (meshstack:natsNodeCount lowered to ${remaining}), ` +
        `and their streams cannot all move to the servers that stay: ${reasons.join("; ")}. Nothing has been moved or deleted. ` +
        `To go on, ${ways.join("; ")}, then run pulumi up again; or set meshstack:natsNodeCount back`
    );
}

/**
 * The streams to peer-remove `node` from: every stream with a replica on it,
 * but those whose only replica it is (accepted losses: nothing to move them
 * from, and a move would only make an empty copy).
 */
export function streamsToMove(node: string, placements: StreamPlacement[]): string[] {
    const alone = new Set(streamsOnlyOn(node, placements));
    return streamsHeldBy(node, placements).filter((stream) => !alone.has(stream));
}

/**
 * Why `stream` may not lose a replica yet; undefined when it may. It may once
 * it has a leader and every replica is current: the others then keep a
 * current majority while the new replica catches up.
 */
export function notReadyToMove(placement: StreamPlacement): string | undefined {
    if (placement.unavailable !== undefined) return `no stream info (${placement.unavailable})`;
    if (!placement.leader) return "no leader";
    const behind = placement.replicas.filter((r) => r.offline || !r.current);
    if (behind.length) return `${behind.map((r) => `the replica on ${r.name} is ${r.offline ? "offline" : `not current${r.lag ? ` (${r.lag} behind)` : ""}`}`).join(", ")}`;
    return undefined;
}

/**
 * Why `node` is not evacuated yet, one reason per stream (or consumer) of
 * `moved` that still has a replica on it, has no leader, has fewer replicas
 * than it is configured with, or has one not current yet; empty when every
 * one is whole and current on the servers that stay. A placement of a
 * stream not in `moved` is not looked at.
 */
export function evacuationPending(node: string, moved: string[], placements: StreamPlacement[]): string[] {
    const pending: string[] = [];
    const byStream = new Map(placements.map((p) => [p.stream, p]));
    for (const stream of [...moved].sort()) {
        const p = byStream.get(stream);
        if (!p) pending.push(`${stream}: not listed by the cluster`);
        else if (p.leader === node || p.replicas.some((r) => r.name === node)) pending.push(`${stream}: still has a replica on ${node}`);
        else if (p.configuredReplicas !== undefined && p.replicas.length + 1 < p.configuredReplicas) {
            pending.push(`${stream}: ${p.replicas.length + 1} of ${p.configuredReplicas} replicas placed`);
        } else {
            const reason = notReadyToMove(p);
            if (reason) pending.push(`${stream}: ${reason}`);
        }
    }
    return pending;
}

/**
 * The last word of a scale-down, once every desired state is written: the
 * JetStream meta group holds the members and nothing else. A server removed
 * from the meta group is taken back by its leader when it is still heard
 * from once nats-server's removal timeout (five minutes) has passed; on the
 * box's VMs an upgrade roll held the leader's new desired state (its routes
 * and WireGuard peers without the leaving nodes) for longer than that, and
 * the meta group ended the `up` with 4 peers for 3 members. So the meta group
 * is settled only after no server that stays has a route to a server that
 * does not: from then on nothing can bring a removed one back.
 */

/** A meta group peer as its leader reports it: the server's name (or what the leader says for one it does not know) and its peer id. */
export interface MetaGroupPeer {
    name: string;
    peer: string;
    current?: boolean;
    offline?: boolean;
}

/** The meta group as its leader reports it ($SYS.REQ.SERVER.PING.JSZ, leader_only), the leader among the peers; no leader while an election runs. */
export interface MetaGroupView {
    leader?: string;
    peers: MetaGroupPeer[];
}

/**
 * Why a removed server could still come back, one reason per route that a
 * member holds to a server that is not a member, and per member whose routes
 * could not be read (`undefined`); empty once no member routes to anyone
 * else. `routes` lists each member's routes by the remote server's name.
 */
export function routesToNonMembers(members: NatsMember[], routes: Map<string, string[] | undefined>): string[] {
    const names = new Set(members.map((m) => m.node));
    return members.flatMap((m) => {
        const remotes = routes.get(m.node);
        if (remotes === undefined) return [`${m.node} did not report its routes`];
        // A route still in its handshake has no remote name yet: it counts until it has one.
        return [...new Set(remotes.filter((remote) => !names.has(remote)))].sort().map((remote) => `${m.node} still has a route to ${remote || "a server not named yet"}`);
    });
}

/** The meta group's peers that are not members, to be removed by peer id (the leader may know a peer by its id alone). */
export function strayMetaPeers(members: NatsMember[], view: MetaGroupView): MetaGroupPeer[] {
    const names = new Set(members.map((m) => m.node));
    return view.peers.filter((p) => !names.has(p.name));
}

/**
 * Why the meta group is not the members yet, one reason each: no leader, a
 * member it does not hold, a member not current, a peer that is no member;
 * empty when its peers are exactly the members, every one current.
 */
export function metaGroupPending(members: NatsMember[], view: MetaGroupView): string[] {
    if (!view.leader) return ["the meta group has no leader"];
    const byName = new Map(view.peers.map((p) => [p.name, p]));
    return [
        ...members.flatMap((m) => {
            const peer = byName.get(m.node);
            if (!peer) return [`${m.node} is not in the meta group`];
            if (peer.offline || !peer.current) return [`${m.node} is ${peer.offline ? "offline" : "not current"} in the meta group`];
            return [];
        }),
        ...strayMetaPeers(members, view).map((p) => `${p.name} (peer ${p.peer}) is in the meta group and is no member`),
    ];
}
