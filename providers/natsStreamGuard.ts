/**
 * The stream guard of one NATS node (lib/natsRollout.ts streamLoss): it
 * refuses to let the node go while the node holds the only replica of a
 * stream the stack has not accepted losing (meshstack:natsAcceptStreamLoss).
 *
 * It asks in delete(), because delete is the one step the engine runs
 * before the node's instance is deleted, in both ways a node goes:
 * - removed (natsNodeCount lowered): the engine deletes dependents before
 *   what they depend on, and the guard depends on the instance;
 * - replaced: NATS instances are deleteBeforeReplace, and for such a
 *   replacement the engine first deletes every dependent whose diff, with
 *   the inputs it takes from the instance unknown, says replace
 *   (pulumi/pulumi pkg/resource/deploy/step_generator.go,
 *   calculateDependentReplacements). A new instance id replaces the guard,
 *   so its delete runs before the old instance is deleted.
 * A guard placed before the instance cannot ask: what it would dial is the
 * instances' own addresses, and the instance would wait for it.
 *
 * delete() gets only the state of the last `up`, but the acceptance must be
 * this `up`'s: a refused replacement has already replaced the node's label,
 * so the same deletion comes again in every later `up`, and an acceptance
 * added then must count. So the guard reads meshstack:natsAcceptStreamLoss
 * from the stack's config, which the engine hands every dynamic provider
 * through configure() (pulumi/pulumi#17697); the program validates the key.
 *
 * It dials every node's client URL (any server answers for the whole
 * cluster, so a dead node does not hide the rest), with the deployer's
 * certificate, and needs the deploying machine inside natsClientCidrs: the
 * same condition as the rejoin wait, whose setting creates the guards.
 * Runs from its serialized text; its deadline is its own.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { EVERY_STREAM, isAcceptedStreamEntry, streamLoss, streamLossProblem } from "../lib/natsRollout";
import { openNatsSession, pause, remainingMs, NatsSession, streamPlacements } from "./natsSession";
import { readFromState } from "./stateOnly";
import { changedFields, knownFailures } from "./unknowns";

export interface NatsStreamGuardInputs {
    /** The node's name in the program (nats-<index>), for messages. */
    name: string;
    /** The node's server_name (its hostname): what JetStream names its replicas by. */
    node: string;
    /** The instance the node runs on: a new one means this one is about to be deleted. */
    instanceId: string;
    /** Every node's client URL, tls://<public IP>:4222. */
    servers: string[];
    /** Name the nodes' certificates carry for clients dialling their IPs (natsServiceName). */
    tlsServerName: string;
    caPem: string;
    certPem: string;
    /** The deployer's client key; secret in inputs and state. */
    keyPem: string;
}

/** The config key the guard (and the scale-down) reads, as the program declares it (lib/config/nats.ts). */
export const ACCEPT_KEY = "meshstack:natsAcceptStreamLoss";
/** How long a deletion waits for the cluster to answer and for every stream's placement to be readable. */
const STREAM_GUARD_TIMEOUT_SECONDS = 60;
const POLL_INTERVAL_MS = 2000;
/** What replaces the guard: the node it guards is another one. */
const NODE_FIELDS = ["name", "node", "instanceId"] as const;
const ALL_FIELDS = [...NODE_FIELDS, "servers", "tlsServerName", "caPem", "certPem", "keyPem"] as const;

function natsStreamGuardInputProblems(inputs: Partial<NatsStreamGuardInputs>): { property: string; reason: string }[] {
    const problems: { property: string; reason: string }[] = [];
    if (typeof inputs.name !== "string" || !/^nats-\d+$/.test(inputs.name)) problems.push({ property: "name", reason: `got ${JSON.stringify(inputs.name)}; allowed: nats-<index>` });
    if (typeof inputs.node !== "string" || !/^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(inputs.node)) {
        problems.push({ property: "node", reason: `got ${JSON.stringify(inputs.node)}; allowed: the node's server name (a hostname)` });
    }
    if (typeof inputs.instanceId !== "string" || inputs.instanceId === "") {
        problems.push({ property: "instanceId", reason: `got ${JSON.stringify(inputs.instanceId)}; allowed: the id of the node's instance` });
    }
    if (!Array.isArray(inputs.servers) || inputs.servers.length === 0 || !inputs.servers.every((s) => typeof s === "string" && /^tls:\/\/[^/\s]+:\d+$/.test(s))) {
        problems.push({ property: "servers", reason: `got ${JSON.stringify(inputs.servers)}; allowed: one or more tls://host:port URLs, the nodes' own` });
    }
    for (const property of ["tlsServerName", "caPem", "certPem", "keyPem"] as const) {
        if (typeof inputs[property] !== "string" || inputs[property] === "") problems.push({ property, reason: "is required" });
    }
    return problems;
}

/**
 * meshstack:natsAcceptStreamLoss as the engine hands it over: the stack
 * config's JSON text (or, from some hosts, the list itself); unset is none.
 */
export function acceptedStreams(raw: unknown): string[] {
    const value = typeof raw === "string" ? (raw === "" ? [] : JSON.parse(raw)) : raw ?? [];
    if (!Array.isArray(value) || !value.every(isAcceptedStreamEntry)) {
        throw new Error(`${ACCEPT_KEY} ${JSON.stringify(raw)} is not allowed; allowed: a list of JetStream stream names, or "${EVERY_STREAM}"`);
    }
    return value;
}

function log(message: string): void {
    console.log(`[nats-stream-guard] ${message}`);
}

/** The stack config seen by configure(); the engine configures a provider before any other call. */
const configured: { accepted?: unknown } = {};

/** Asks the cluster what deleting the node would lose; throws the refusal, or returns when nothing unaccepted would go. */
async function guardDeletion(props: NatsStreamGuardInputs, accepted: string[]): Promise<void> {
    const started = Date.now();
    const deadline = started + STREAM_GUARD_TIMEOUT_SECONDS * 1000;
    const who = `${props.name} (${props.node})`;
    let session: NatsSession;
    try {
        session = await openNatsSession(props, deadline, "meshstack-nats-stream-guard", (m) => log(`${who}: ${m}`));
    } catch (err) {
        throw new Error(`refused: the stream guard of NATS node ${who} cannot tell which streams deleting it would lose: ${(err as Error).message}. Nothing has been deleted. ` +
            `Run pulumi up where the client port is reachable (inside meshstack:natsClientCidrs), or add "${EVERY_STREAM}" to meshstack:natsAcceptStreamLoss to delete the node without asking`);
    }
    try {
        for (let attempt = 1; ; attempt++) {
            const loss = streamLoss(props.node, await streamPlacements(session), accepted);
            // A placement not readable yet (a leader election) may settle; a lost stream will not.
            if (loss.unknown.length === 0 || loss.lost.length > 0 || remainingMs(deadline) === 0) {
                const problem = streamLossProblem(props.name, props.node, loss);
                if (problem) throw new Error(problem);
                log(`${who}: no stream has its only replica on it${accepted.length ? ` but those accepted in ${ACCEPT_KEY} (${accepted.join(", ")})` : ""}; it may go`);
                return;
            }
            log(`${who}: attempt ${attempt} at ${((Date.now() - started) / 1000).toFixed(1)}s: placement not readable yet: ${loss.unknown.join("; ")}; giving up in ${Math.ceil(remainingMs(deadline) / 1000)}s`);
            await pause(Math.min(POLL_INTERVAL_MS, remainingMs(deadline)));
        }
    } finally {
        // close, not drain: drain waits for a server, and the host would wait with it.
        await session.nc.close().catch(() => undefined);
    }
}

const natsStreamGuardProvider: pulumi.dynamic.ResourceProvider<NatsStreamGuardInputs, NatsStreamGuardInputs> = {
    async configure(req: pulumi.dynamic.ConfigureRequest) {
        configured.accepted = req.config.get(ACCEPT_KEY);
    },

    async check(_olds: NatsStreamGuardInputs, news: NatsStreamGuardInputs) {
        return { inputs: news, failures: knownFailures(news, natsStreamGuardInputProblems(news)) };
    },

    // Nothing to ask while the node stays: what it holds is only read when it is about to go.
    async create(inputs: NatsStreamGuardInputs) {
        return { id: crypto.randomUUID(), outs: inputs };
    },

    async diff(_id: string, olds: NatsStreamGuardInputs, news: NatsStreamGuardInputs) {
        const replaces = changedFields(olds, news, NODE_FIELDS);
        const changed = changedFields(olds, news, ALL_FIELDS);
        return { changes: changed.length > 0, diffs: changed, replaces, deleteBeforeReplace: true };
    },

    // New addresses or certificates are kept for the deletion to come.
    async update(_id: string, _olds: NatsStreamGuardInputs, news: NatsStreamGuardInputs) {
        return { outs: news };
    },

    read: readFromState<NatsStreamGuardInputs>("NATS stream guard"),

    async delete(_id: string, props: NatsStreamGuardInputs) {
        const accepted = acceptedStreams(configured.accepted);
        if (accepted.includes(EVERY_STREAM)) {
            log(`${props.name} (${props.node}): ${ACCEPT_KEY} accepts the loss of every stream; not asking`);
            return;
        }
        await guardDeletion(props, accepted);
    },
};

export interface NatsStreamGuardArgs {
    name: pulumi.Input<string>;
    node: pulumi.Input<string>;
    instanceId: pulumi.Input<string>;
    servers: pulumi.Input<pulumi.Input<string>[]>;
    tlsServerName: pulumi.Input<string>;
    caPem: pulumi.Input<string>;
    certPem: pulumi.Input<string>;
    keyPem: pulumi.Input<string>;
}

/** Refuses the deletion of its node (replaced or removed) while the node holds the only replica of a stream not accepted. */
export class NatsStreamGuard extends pulumi.dynamic.Resource {
    constructor(name: string, args: NatsStreamGuardArgs, opts?: pulumi.CustomResourceOptions) {
        super(natsStreamGuardProvider, name, { ...args, keyPem: pulumi.secret(args.keyPem) },
            pulumi.mergeOptions(opts, { additionalSecretOutputs: ["keyPem"] }), "meshstack", "NatsStreamGuard");
    }
}
