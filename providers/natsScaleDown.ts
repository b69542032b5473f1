/**
 * Scale-down of the NATS cluster without loss (lib/natsScaleDown.ts): one
 * resource per cluster, holding its members. When an `up` declares fewer
 * members than the last one, its update() moves every stream and consumer
 * replica off each leaving node, waits until each such stream is whole and
 * current on the servers that stay, and removes the node from the JetStream
 * meta group; one node at a time, highest index first.
 *
 * Why update(), and one resource for the cluster, rather than each node's
 * stream guard: the engine deletes what the program no longer declares
 * after every create and update of the `up` has finished, so this update
 * runs before any leaving node's stream guard or instance is deleted. An
 * update sees the members before and after, so it knows a node leaves (a
 * guard's delete() runs alike for a node replaced, which comes back under
 * its name and must keep its place in the meta group). And one update
 * removes the nodes one after the other: the meta group takes one membership
 * change at a time, and a stream must be current again before it loses
 * another replica. The stream guards stay the last word on each node.
 *
 * A refusal (lib/natsScaleDown.ts scaleDownProblem) fails the update before
 * anything is moved; the state keeps the old members, so the next `up`
 * starts again, and a node already evacuated has nothing left to move.
 * create() has nothing to compare with (a cluster, or this resource, is new)
 * and delete() nothing to do (the cluster goes with it, or the rejoin wait
 * that brings it is turned off).
 *
 * It reads meshstack:natsAcceptStreamLoss from this `up`'s config, as the
 * stream guard does. Streams are moved over the client port, with the
 * deployer's certificate, in the global account where they are; the meta
 * group is reached as the system account's user (cloudinit/nats.ts). Needs
 * the deploying machine inside natsClientCidrs, like the rejoin wait, whose
 * setting creates it and whose deadline it takes for each node. Runs from
 * its serialized text.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { NATS_SYSTEM_USER } from "../cloudinit/nats";
import { EVERY_STREAM } from "../lib/natsRollout";
import { evacuationPending, leavingMembers, NatsMember, notReadyToMove, replacedMembers, replacedWhileLeavingProblem, scaleDownProblem, streamsToMove } from "../lib/natsScaleDown";
import {
    consumerPlacements, NatsClientAccess, NatsSession, NatsSystemUser, openNatsSession, openSystemConnection, pause, remainingMs, streamPlacements,
} from "./natsSession";
import { ACCEPT_KEY, acceptedStreams } from "./natsStreamGuard";
import { readFromState } from "./stateOnly";
import { changedFields, knownFailures } from "./unknowns";

/** What a provider that changes the cluster's membership needs: the members, where to reach them, and as whom. */
export interface NatsMembershipInputs {
    /** This up's nodes, in index order. */
    members: NatsMember[];
    /** Their client URLs, tls://<public IP>:4222, in the same order. */
    servers: string[];
    tlsServerName: string;
    caPem: string;
    certPem: string;
    /** The deployer's client key; secret in inputs and state. */
    keyPem: string;
    /** The system account user's password; secret in inputs and state. */
    systemPassword: string;
    /** How long one node's evacuation, or the meta group's settling, may take (meshstack:natsRejoinTimeoutSeconds). */
    timeoutSeconds: number;
}

export interface NatsScaleDownInputs extends NatsMembershipInputs {
    /** Their instance ids, in the same order: a changed one is a replaced node. Absent in a state from before they were kept. */
    instanceIds?: string[];
}

export const POLL_INTERVAL_MS = 2000;
/** How long one API request may take before the attempt is tried again. */
const REQUEST_TIMEOUT_MS = 5000;
/**
 * Errors a later attempt may not meet: no answer in time, or no meta leader (an election:
 * "no responders", "JetStream system temporarily unavailable", err_code 10008, which CI met
 * right after a server's removal), or a membership change still in flight.
 */
export const TRANSIENT = /timeout|timed out|no responders|temporarily unavailable|member change is in progress/i;
/** The meta leader's answer for a server it does not hold (removed before). */
export const SERVER_NOT_A_MEMBER = 10044;
/** A stream leader's answer for a peer it does not hold (moved off before). */
const PEER_NOT_A_MEMBER = 10040;
const ALL_FIELDS = ["members", "instanceIds", "servers", "tlsServerName", "caPem", "certPem", "keyPem", "systemPassword", "timeoutSeconds"] as const;

/** Every problem with a membership provider's inputs at once, each naming its property, the value and what is allowed. */
export function membershipInputProblems(inputs: Partial<NatsMembershipInputs>): { property: string; reason: string }[] {
    const problems: { property: string; reason: string }[] = [];
    const members = inputs.members;
    if (!Array.isArray(members) || members.length === 0 || !members.every((m, i) => m?.name === `nats-${i}` && typeof m.node === "string" && /^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(m.node))) {
        problems.push({ property: "members", reason: `got ${JSON.stringify(members)}; allowed: { name: "nats-<index>", node: <server name> } for each node, in index order` });
    }
    if (!Array.isArray(inputs.servers) || inputs.servers.length === 0 || !inputs.servers.every((s) => typeof s === "string" && /^tls:\/\/[^/\s]+:\d+$/.test(s))) {
        problems.push({ property: "servers", reason: `got ${JSON.stringify(inputs.servers)}; allowed: one or more tls://host:port URLs, the nodes' own` });
    }
    for (const property of ["tlsServerName", "caPem", "certPem", "keyPem", "systemPassword"] as const) {
        if (typeof inputs[property] !== "string" || inputs[property] === "") problems.push({ property, reason: "is required" });
    }
    if (!Number.isInteger(inputs.timeoutSeconds) || inputs.timeoutSeconds! <= 0) {
        problems.push({ property: "timeoutSeconds", reason: `got ${JSON.stringify(inputs.timeoutSeconds)}; allowed: a positive whole number of seconds` });
    }
    return problems;
}

function inputProblems(inputs: Partial<NatsScaleDownInputs>): { property: string; reason: string }[] {
    const problems = membershipInputProblems(inputs);
    if (!Array.isArray(inputs.instanceIds) || inputs.instanceIds.length !== (inputs.members?.length ?? 0) || !inputs.instanceIds.every((id) => typeof id === "string" && id !== "")) {
        problems.push({ property: "instanceIds", reason: `got ${JSON.stringify(inputs.instanceIds)}; allowed: one instance id for each member, in the same order` });
    }
    return problems;
}

function log(message: string): void {
    console.log(`[nats-scale-down] ${message}`);
}

/** The stack config seen by configure(); the engine configures a provider before any other call. */
const configured: { accepted?: unknown } = {};

/** A JetStream API request; its JSON answer, or an error naming the subject and what the server said. */
export async function apiRequest(nc: any, subject: string, body: object): Promise<any> {
    const reply = JSON.parse((await nc.request(subject, JSON.stringify(body), { timeout: REQUEST_TIMEOUT_MS })).string());
    if (reply.error) {
        // JetStream API errors carry err_code; the system account's monitoring replies only an HTTP-like code.
        const code = reply.error.err_code ?? reply.error.code;
        const err = new Error(`${subject}: ${reply.error.description} (${code})`);
        (err as any).code = code;
        throw err;
    }
    return reply;
}

/** What `member` holds: the streams with a replica on it (but those it alone holds), and the durable consumers of those with one. */
async function heldBy(session: NatsSession, member: NatsMember): Promise<{ streams: string[]; consumers: string[] }> {
    const streams = streamsToMove(member.node, await streamPlacements(session));
    const consumers = (await Promise.all(streams.map((s) => consumerPlacements(session, s)))).flat()
        .filter((c) => c.leader === member.node || c.replicas.some((r) => r.name === member.node)).map((c) => c.stream);
    return { streams, consumers };
}

/** Asks the stream's leader to give up its replica on `node`; JetStream places a new one on another server. */
async function peerRemove(session: NatsSession, stream: string, node: string): Promise<void> {
    try {
        await apiRequest(session.nc, `$JS.API.STREAM.PEER.REMOVE.${stream}`, { peer: node });
    } catch (err) {
        // Already off it: an earlier attempt's answer was lost.
        if ((err as any).code !== PEER_NOT_A_MEMBER) throw err;
    }
}

/**
 * Moves every replica off `member` and waits until each stream (and durable
 * consumer) it held is whole and current elsewhere. A stream gives up its
 * replica only once every replica is current, so the others keep a current
 * majority while the new one catches up. A cluster that does not answer (a
 * leader election) is waited for; an error it answers with ends the wait.
 */
async function evacuate(session: NatsSession, member: NatsMember, deadline: number): Promise<void> {
    const who = `${member.name} (${member.node})`;
    const started = Date.now();
    let held: { streams: string[]; consumers: string[] } | undefined;
    const toRemove = new Set<string>();
    for (let attempt = 1; ; attempt++) {
        let pending: string[];
        try {
            if (!held) {
                held = await heldBy(session, member);
                held.streams.forEach((s) => toRemove.add(s));
                log(`${who}: ${held.streams.length ? `moving ${held.streams.length} ${held.streams.length === 1 ? "stream" : "streams"} off it (${held.streams.join(", ")})` : "holds no stream replica to move"}`);
            }
            const streams = await streamPlacements(session, held.streams);
            for (const stream of [...toRemove]) {
                const placement = streams.find((p) => p.stream === stream);
                if (placement && notReadyToMove(placement) === undefined) {
                    await peerRemove(session, stream, member.node);
                    toRemove.delete(stream);
                }
            }
            const consumers = (await Promise.all(held.streams.filter((s) => !toRemove.has(s)).map((s) => consumerPlacements(session, s)))).flat();
            const moving = [...held.streams, ...held.consumers].filter((s) => !toRemove.has(s.split(" > ")[0]));
            pending = [
                ...[...toRemove].map((s) => `${s}: gives up its replica on ${member.node} once every replica is current (${notReadyToMove(streams.find((p) => p.stream === s) ?? { stream: s, replicas: [], unavailable: "not listed" })})`),
                ...evacuationPending(member.node, moving, [...streams, ...consumers]),
            ];
        } catch (err) {
            if (!TRANSIENT.test((err as Error).message)) throw new Error(`${who} could not be evacuated: ${(err as Error).message}. Its instance has not been deleted; run pulumi up again`);
            pending = [`the cluster did not answer: ${(err as Error).message}`];
        }
        if (!pending.length) {
            log(`${who}: every replica it held is current on the servers that stay (${((Date.now() - started) / 1000).toFixed(1)}s)`);
            return;
        }
        if (remainingMs(deadline) === 0) {
            throw new Error(`${who} could not be evacuated before the deadline (meshstack:natsRejoinTimeoutSeconds): ${pending.join("; ")}. ` +
                "Its instance has not been deleted; the streams it still holds keep their replicas. Run pulumi up again once they are current, or raise meshstack:natsRejoinTimeoutSeconds");
        }
        log(`${who}: attempt ${attempt} at ${((Date.now() - started) / 1000).toFixed(1)}s: ${pending.join("; ")}; giving up in ${Math.ceil(remainingMs(deadline) / 1000)}s`);
        await pause(Math.min(POLL_INTERVAL_MS, remainingMs(deadline)));
    }
}

/**
 * Removes `member` from the JetStream meta group; a member change still in flight is waited out.
 * A request whose answer timed out may still have been carried out: the meta leader can apply
 * the removal and its reply be lost in the election that follows. So "not a member" after such
 * an attempt is this removal's own success, and only on a first attempt does it mean an earlier `up`.
 */
export async function leaveMetaGroup(system: any, member: NatsMember, deadline: number): Promise<void> {
    const who = `${member.name} (${member.node})`;
    let unanswered = 0;
    for (let attempt = 1; ; attempt++) {
        try {
            await apiRequest(system, "$JS.API.SERVER.REMOVE", { peer: member.node });
            log(`${who}: removed from the JetStream meta group`);
            return;
        } catch (err) {
            if ((err as any).code === SERVER_NOT_A_MEMBER) {
                if (unanswered) log(`${who}: attempt ${unanswered}'s answer was lost; the meta group no longer holds it`);
                log(unanswered ? `${who}: removed from the JetStream meta group` : `${who}: not in the JetStream meta group (removed before)`);
                return;
            }
            const message = (err as Error).message;
            if (/timeout|timed out/i.test(message)) unanswered = attempt;
            if (remainingMs(deadline) === 0 || !TRANSIENT.test(message)) {
                throw new Error(`${who} was evacuated but could not be removed from the JetStream meta group: ${message}. Its instance has not been deleted; run pulumi up again`);
            }
            log(`${who}: attempt ${attempt}: the meta group is not ready to remove it yet: ${message}; giving up in ${Math.ceil(remainingMs(deadline) / 1000)}s`);
            await pause(Math.min(POLL_INTERVAL_MS, remainingMs(deadline)));
        }
    }
}

/** Evacuates and removes every member `olds` has and `news` has not, one at a time; throws the refusal or the failure. */
export async function scaleDown(olds: NatsScaleDownInputs, news: NatsScaleDownInputs, accepted: string[]): Promise<void> {
    const leaving = leavingMembers(olds.members, news.members);
    if (!leaving.length) return;
    // Only the servers that stay: a server removed from the meta group disables its own JetStream, so a
    // session on a leaving one is answered "JetStream system temporarily unavailable" from its removal on
    // (CI met it once nats-4 was removed, until the deadline, while evacuating nats-3).
    const access: NatsClientAccess = news;
    const system: NatsSystemUser = { user: NATS_SYSTEM_USER, password: news.systemPassword };
    const first = Date.now() + news.timeoutSeconds * 1000;
    let session: NatsSession | undefined;
    let systemConnection: any;
    try {
        session = await openNatsSession(access, first, "meshstack-nats-scale-down", log);
        systemConnection = await openSystemConnection(access, system, first, "meshstack-nats-scale-down-system", log);
        log(`asking the cluster through ${session.nc.info?.server_name} and, as the system account, ${systemConnection.info?.server_name}`);
        for (let attempt = 1; ; attempt++) {
            const streams = await streamPlacements(session).catch((err: Error) => {
                if (TRANSIENT.test(err.message) && remainingMs(first) > 0) return [{ stream: "(every stream)", replicas: [], unavailable: `the cluster did not list its streams: ${err.message}` }];
                throw err;
            });
            const unreadable = streams.filter((p) => p.unavailable !== undefined);
            if (!unreadable.length || accepted.includes(EVERY_STREAM) || remainingMs(first) === 0) {
                const problem = scaleDownProblem(leaving, news.members.length, streams, accepted);
                if (problem) throw new Error(problem);
                break;
            }
            log(`attempt ${attempt}: placement not readable yet: ${unreadable.map((p) => `${p.stream} (${p.unavailable})`).join("; ")}; giving up in ${Math.ceil(remainingMs(first) / 1000)}s`);
            await pause(Math.min(POLL_INTERVAL_MS, remainingMs(first)));
        }
        for (const member of leaving) {
            const deadline = Date.now() + news.timeoutSeconds * 1000;
            await evacuate(session, member, deadline);
            await leaveMetaGroup(systemConnection, member, deadline);
        }
    } finally {
        // close, not drain: drain waits for a server, and the host would wait with it.
        await session?.nc.close().catch(() => undefined);
        await systemConnection?.close().catch(() => undefined);
    }
}

const natsScaleDownProvider: pulumi.dynamic.ResourceProvider<NatsScaleDownInputs, NatsScaleDownInputs> = {
    async configure(req: pulumi.dynamic.ConfigureRequest) {
        configured.accepted = req.config.get(ACCEPT_KEY);
    },

    // A preview names who leaves and what the up will do, and refuses a scale-down beside a replacement; the cluster itself is asked in the up.
    async check(olds: NatsScaleDownInputs, news: NatsScaleDownInputs) {
        const failures = knownFailures(news, inputProblems(news));
        if (!failures.length && Array.isArray(olds?.members)) {
            const leaving = leavingMembers(olds.members, news.members);
            const problem = replacedWhileLeavingProblem(leaving, replacedMembers(olds.members, olds.instanceIds, news.members, news.instanceIds!));
            if (problem) failures.push({ property: "instanceIds", reason: problem });
            else if (leaving.length) {
                log(`${leaving.map((m) => `${m.name} (${m.node})`).join(", then ")} ${leaving.length === 1 ? "leaves" : "leave"} the cluster in this up: ` +
                    "every stream replica is moved off and current on the servers that stay, then the node leaves the JetStream meta group, then its instance is deleted. " +
                    `The up refuses, before anything moves, a stream with more replicas than ${news.members.length} servers, or one whose only replica is on a leaving node (unless ${ACCEPT_KEY} names it)`);
            }
        }
        return { inputs: news, failures };
    },

    async create(inputs: NatsScaleDownInputs) {
        return { id: crypto.randomUUID(), outs: inputs };
    },

    async diff(_id: string, olds: NatsScaleDownInputs, news: NatsScaleDownInputs) {
        const changed = changedFields(olds, news, ALL_FIELDS);
        return { changes: changed.length > 0, diffs: changed, replaces: [] };
    },

    async update(_id: string, olds: NatsScaleDownInputs, news: NatsScaleDownInputs) {
        await scaleDown(olds, news, acceptedStreams(configured.accepted));
        return { outs: news };
    },

    read: readFromState<NatsScaleDownInputs>("NATS scale-down"),

    async delete() {
        // The whole cluster goes, or the rejoin wait that brings this resource is turned off: nobody is left to move replicas to.
    },
};

/** A membership provider's arguments: the members, where to reach them, and as whom. */
export interface NatsMembershipArgs {
    members: pulumi.Input<pulumi.Input<NatsMember>[]>;
    servers: pulumi.Input<pulumi.Input<string>[]>;
    tlsServerName: pulumi.Input<string>;
    caPem: pulumi.Input<string>;
    certPem: pulumi.Input<string>;
    keyPem: pulumi.Input<string>;
    systemPassword: pulumi.Input<string>;
    timeoutSeconds: pulumi.Input<number>;
}

/** The deployer's key and the system password, secret in inputs and in state. */
export function secretMembershipArgs<T extends NatsMembershipArgs>(args: T, opts?: pulumi.CustomResourceOptions): [T, pulumi.CustomResourceOptions] {
    return [{ ...args, keyPem: pulumi.secret(args.keyPem), systemPassword: pulumi.secret(args.systemPassword) }, pulumi.mergeOptions(opts, { additionalSecretOutputs: ["keyPem", "systemPassword"] })];
}

export interface NatsScaleDownArgs extends NatsMembershipArgs {
    /** Each member's instance id, one input each: in a preview only a replaced node's is unknown. */
    instanceIds: pulumi.Input<pulumi.Input<string>[]>;
}

/** Moves every replica off the nodes a lower natsNodeCount removes, and removes them from the meta group, before their instances are deleted. */
export class NatsScaleDown extends pulumi.dynamic.Resource {
    constructor(name: string, args: NatsScaleDownArgs, opts?: pulumi.CustomResourceOptions) {
        super(natsScaleDownProvider, name, ...secretMembershipArgs(args, opts), "meshstack", "NatsScaleDown");
    }
}
