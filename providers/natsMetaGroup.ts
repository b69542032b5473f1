/**
 * The meta group settled after a scale-down (lib/natsScaleDown.ts): one
 * resource per cluster, holding its members, that every desired state and
 * every nats-server upgrade wait comes before. When an `up` declares fewer
 * members than the last one, its update() waits until no server that stays
 * has a route to one that leaves (their agents have dropped the leaving
 * nodes' routes and WireGuard peers, and nats-server has closed what was
 * left), then removes from the JetStream meta group every peer that is not
 * a member, by peer id, and waits until the meta group is the members, each
 * current.
 *
 * Why a second resource, after the scale-down's: the scale-down removes each
 * leaving server from the meta group before any desired state is written (a
 * member must keep a leaving node's tunnel and route until its replicas have
 * moved). nats-server's meta leader takes a removed server back once it has
 * heard from it for longer than its removal timeout (five minutes), and the
 * desired states can take longer than that to be written: on the box's VMs
 * an upgrade roll held the last ones, and the meta group ended the `up` with
 * 4 peers for 3 members. Once no member routes to a leaving server, nothing
 * brings it back; the engine deletes its instance after this update.
 *
 * create() has nothing to compare with and delete() nothing to do, as for the
 * scale-down. Reached as the system account's user over the client port,
 * with the deployer's certificate, on the servers that stay. Runs from its
 * serialized text.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { NATS_SYSTEM_USER } from "../cloudinit/nats";
import { leavingMembers, MetaGroupView, metaGroupPending, NatsMember, routesToNonMembers, strayMetaPeers } from "../lib/natsScaleDown";
import {
    apiRequest, membershipInputProblems, NatsMembershipArgs, NatsMembershipInputs, POLL_INTERVAL_MS, secretMembershipArgs, SERVER_NOT_A_MEMBER, TRANSIENT,
} from "./natsScaleDown";
import { openSystemConnection, pause, remainingMs } from "./natsSession";
import { readFromState } from "./stateOnly";
import { changedFields, knownFailures } from "./unknowns";

export type NatsMetaGroupInputs = NatsMembershipInputs;

const ALL_FIELDS = ["members", "servers", "tlsServerName", "caPem", "certPem", "keyPem", "systemPassword", "timeoutSeconds"] as const;

function log(message: string): void {
    console.log(`[nats-meta-group] ${message}`);
}

/** One server's monitoring answer ($SYS.REQ.SERVER.PING.<what>, that server's alone); its data, or undefined when it does not answer in time. */
async function serverReport(system: any, what: string, options: object): Promise<any | undefined> {
    try {
        return (await apiRequest(system, `$SYS.REQ.SERVER.PING.${what}`, options)).data;
    } catch (err) {
        if (TRANSIENT.test((err as Error).message)) return undefined;
        throw err;
    }
}

/** Each member's routes, by the remote server's name; undefined for a member that did not answer. Asked at once: a silent member costs one request's timeout, not one each. */
async function memberRoutes(system: any, members: NatsMember[]): Promise<Map<string, string[] | undefined>> {
    const reports = await Promise.all(members.map((member) => serverReport(system, "ROUTEZ", { server_name: member.node, exact_match: true })));
    return new Map(members.map((member, i) => [member.node, reports[i] ? (reports[i].routes ?? []).map((r: { remote_name: string }) => r.remote_name) : undefined]));
}

/** The meta group as its leader reports it, the leader among the peers; no leader when none answers. */
async function metaGroup(system: any): Promise<MetaGroupView> {
    const jsz = await serverReport(system, "JSZ", { leader_only: true });
    const meta = jsz?.meta_cluster;
    if (!meta?.leader) return { peers: [] };
    return { leader: meta.leader, peers: [{ name: meta.leader, peer: meta.peer, current: true }, ...(meta.replicas ?? [])] };
}

/**
 * Waits until no member routes to a server that is not one, then removes
 * every other peer from the meta group and waits until its peers are the
 * members, each current; throws naming what was still pending at the deadline.
 */
export async function settleMetaGroup(members: NatsMember[], system: any, deadline: number): Promise<void> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
        let pending = routesToNonMembers(members, await memberRoutes(system, members));
        if (!pending.length) {
            const view = await metaGroup(system);
            for (const stray of strayMetaPeers(members, view)) {
                try {
                    await apiRequest(system, "$JS.API.SERVER.REMOVE", { peer: "", peer_id: stray.peer });
                    log(`${stray.name} (peer ${stray.peer}): removed from the JetStream meta group`);
                } catch (err) {
                    if ((err as any).code !== SERVER_NOT_A_MEMBER && !TRANSIENT.test((err as Error).message)) {
                        throw new Error(`${stray.name} (peer ${stray.peer}) could not be removed from the JetStream meta group: ${(err as Error).message}. Run pulumi up again, or remove it with nats server cluster peer-remove`);
                    }
                }
            }
            pending = metaGroupPending(members, view);
        }
        if (!pending.length) {
            log(`the JetStream meta group is the ${members.length} members, each current, and no member routes to another server (${((Date.now() - started) / 1000).toFixed(1)}s)`);
            return;
        }
        if (remainingMs(deadline) === 0) {
            throw new Error(`the JetStream meta group did not settle to the ${members.length} members before the deadline (meshstack:natsRejoinTimeoutSeconds): ${pending.join("; ")}. ` +
                "The leaving instances have not been deleted. Run pulumi up again once the members' agents have applied their desired states, or raise meshstack:natsRejoinTimeoutSeconds");
        }
        log(`attempt ${attempt} at ${((Date.now() - started) / 1000).toFixed(1)}s: ${pending.join("; ")}; giving up in ${Math.ceil(remainingMs(deadline) / 1000)}s`);
        await pause(Math.min(POLL_INTERVAL_MS, remainingMs(deadline)));
    }
}

const natsMetaGroupProvider: pulumi.dynamic.ResourceProvider<NatsMetaGroupInputs, NatsMetaGroupInputs> = {
    async check(_olds: NatsMetaGroupInputs, news: NatsMetaGroupInputs) {
        return { inputs: news, failures: knownFailures(news, membershipInputProblems(news)) };
    },

    async create(inputs: NatsMetaGroupInputs) {
        return { id: crypto.randomUUID(), outs: inputs };
    },

    async diff(_id: string, olds: NatsMetaGroupInputs, news: NatsMetaGroupInputs) {
        const changed = changedFields(olds, news, ALL_FIELDS);
        return { changes: changed.length > 0, diffs: changed, replaces: [] };
    },

    async update(_id: string, olds: NatsMetaGroupInputs, news: NatsMetaGroupInputs) {
        const leaving = leavingMembers(olds.members, news.members);
        if (!leaving.length) return { outs: news };
        const deadline = Date.now() + news.timeoutSeconds * 1000;
        // Only the servers that stay: a removed server has no JetStream to answer with.
        const system = await openSystemConnection(news, { user: NATS_SYSTEM_USER, password: news.systemPassword }, deadline, "meshstack-nats-meta-group", log);
        try {
            log(`${leaving.map((m) => `${m.name} (${m.node})`).join(", ")} left: settling the meta group to the members once none of them routes to ${leaving.length === 1 ? "it" : "them"}`);
            await settleMetaGroup(news.members, system, deadline);
        } finally {
            await system.close().catch(() => undefined);
        }
        return { outs: news };
    },

    read: readFromState<NatsMetaGroupInputs>("NATS meta group"),

    async delete() {
        // The whole cluster goes, or the rejoin wait that brings this resource is turned off.
    },
};

/** After every desired state, removes from the JetStream meta group the servers a lower natsNodeCount removed, once nothing that stays can reach them. */
export class NatsMetaGroup extends pulumi.dynamic.Resource {
    constructor(name: string, args: NatsMembershipArgs, opts?: pulumi.CustomResourceOptions) {
        super(natsMetaGroupProvider, name, ...secretMembershipArgs(args, opts), "meshstack", "NatsMetaGroup");
    }
}
