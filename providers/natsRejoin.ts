/**
 * The rejoin wait of one NATS node (meshstack:natsRejoinTimeoutSeconds).
 * Created with the node and updated whenever its instance is replaced, it
 * returns only when the node serves JetStream again and every stream
 * replica it holds is current (lib/natsRollout.ts decides). So the `up`
 * that rolls one node ends when the next may go, and one that ends early
 * says which stream is behind and by how much.
 *
 * It dials the node's own client URL, not the cluster's: an answer from the
 * JetStream API through that one server proves the server routes to the
 * meta leader, and its name proves the URL reached the node meant. The
 * stream placements come from each stream's leader, wherever it runs.
 *
 * A replacement leaves a mark in the runtime bucket while it waits
 * (lib/runtimeChannel.ts rejoinPendingKey), removed once the node is
 * current: a wait that fails leaves it, and the rollout guard then refuses
 * to move another node's image until a later `up` sees this node current.
 * Runs from its serialized text in a fresh process; its deadline is its own
 * (the host ignores cancellation).
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { MAX_NATS_REJOIN_TIMEOUT_SECONDS, streamsBehind, streamsHeldBy } from "../lib/natsRollout";
import { RejoinPending } from "../lib/runtimeChannel";
import { connectNatsSession, natsRefusal, NatsSession, pause, remainingMs, streamPlacements } from "./natsSession";
import { objectWhere, S3ObjectAccess, s3ObjectAccessProblems, signedObjectRequest } from "./s3";
import { S3ObjectAccessArgs, withSecretCredentials } from "./s3Args";
import { readFromState } from "./stateOnly";
import { changedFields, knownFailures } from "./unknowns";
import { formatSeconds } from "../lib/duration";

/** The S3 fields say where the pending mark of a replacement lives (the runtime bucket, the deploy's key). */
export interface NatsRejoinInputs extends S3ObjectAccess {
    /** The node's server_name (its hostname). */
    node: string;
    /** The Linode instance it runs on: a new one is a rejoin to wait for. */
    instanceId: string;
    /** The node's own client URL, tls://<public IP>:4222. */
    server: string;
    /** Name the node's certificate carries for clients dialling its IP (natsServiceName). */
    tlsServerName: string;
    caPem: string;
    certPem: string;
    /** The deployer's client key; secret in inputs and state. */
    keyPem: string;
    timeoutSeconds: number;
}

export interface NatsRejoinOutputs extends NatsRejoinInputs {
    /** Streams with a replica on the node, every one current when the wait ended. */
    streams: string[];
}

/** What makes an update a rejoin to wait for: another instance, or the node reached elsewhere. */
const REJOIN_FIELDS = ["node", "instanceId", "server"] as const;
/** Every input: what is not a rejoin is still kept, for later waits and for delete. */
const WAIT_FIELDS = [...REJOIN_FIELDS, "tlsServerName", "caPem", "certPem", "keyPem", "timeoutSeconds", "endpoint", "region", "bucket", "key", "accessKeyId", "secretAccessKey"] as const;
const POLL_INTERVAL_MS = 2000;

export function natsRejoinInputProblems(inputs: Partial<NatsRejoinInputs>): { property: string; reason: string }[] {
    const problems: { property: string; reason: string }[] = [];
    if (typeof inputs.node !== "string" || !/^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(inputs.node)) {
        problems.push({ property: "node", reason: `got ${JSON.stringify(inputs.node)}; allowed: the node's server name (a hostname)` });
    }
    if (typeof inputs.instanceId !== "string" || inputs.instanceId === "") {
        problems.push({ property: "instanceId", reason: `got ${JSON.stringify(inputs.instanceId)}; allowed: the id of the node's instance` });
    }
    if (typeof inputs.server !== "string" || !/^tls:\/\/[^/\s]+:\d+$/.test(inputs.server)) {
        problems.push({ property: "server", reason: `got ${JSON.stringify(inputs.server)}; allowed: one tls://host:port URL, the node's own` });
    }
    const timeout = inputs.timeoutSeconds;
    if (typeof timeout !== "number" || !Number.isInteger(timeout) || timeout < 1 || timeout > MAX_NATS_REJOIN_TIMEOUT_SECONDS) {
        problems.push({ property: "timeoutSeconds", reason: `got ${JSON.stringify(timeout)}; allowed: an integer from 1 to ${MAX_NATS_REJOIN_TIMEOUT_SECONDS}` });
    }
    for (const property of ["tlsServerName", "caPem", "certPem", "keyPem"] as const) {
        if (typeof inputs[property] !== "string" || inputs[property] === "") problems.push({ property, reason: "is required" });
    }
    return [...problems, ...s3ObjectAccessProblems(inputs)];
}

function log(message: string): void {
    console.log(`[nats-rejoin] ${message}`);
}

/** An error no wait fixes: the URL reaches another server, or the server refuses the deployer. */
function final(message: string): Error {
    return Object.assign(new Error(message), { final: true });
}

/** A session on the node itself; its name proves the URL reached the node meant. Throws while the node is not serving JetStream. */
async function sessionOn(inputs: NatsRejoinInputs, timeoutMs: number): Promise<NatsSession> {
    const access = { ...inputs, servers: [inputs.server] };
    let session: NatsSession;
    try {
        session = await connectNatsSession(access, timeoutMs, "meshstack-nats-rejoin");
    } catch (err) {
        const refusal = natsRefusal(access, err);
        throw refusal ? final(refusal.message) : err;
    }
    const serverName = session.nc.info?.server_name;
    if (serverName === inputs.node) return session;
    await session.nc.close().catch(() => undefined);
    throw final(`${inputs.server} is served by ${JSON.stringify(serverName)}, not ${inputs.node}`);
}

/**
 * Waits until the node serves JetStream and every replica on it is current;
 * the error names what was still behind. One session for the whole wait,
 * opened again only after it failed (the node restarting, a request timing out).
 */
async function waitForRejoin(inputs: NatsRejoinInputs): Promise<NatsRejoinOutputs> {
    const started = Date.now();
    const deadline = started + inputs.timeoutSeconds * 1000;
    let state = "not reached yet";
    let session: NatsSession | undefined;
    try {
        for (let attempt = 1; ; attempt++) {
            try {
                session ??= await sessionOn(inputs, Math.max(1000, Math.min(5000, remainingMs(deadline))));
                const seen = await streamPlacements(session);
                const behind = streamsBehind(inputs.node, seen);
                if (behind.length === 0) {
                    const held = streamsHeldBy(inputs.node, seen);
                    log(`${inputs.node}: serving JetStream, ${held.length} stream replica(s) on it current, after ${formatSeconds(Date.now() - started)}`);
                    return { ...inputs, streams: held };
                }
                state = `serving JetStream, not current yet: ${behind.join("; ")}`;
            } catch (err) {
                if ((err as { final?: boolean }).final) throw new Error(`rejoin of NATS node ${inputs.node}: ${(err as Error).message}`);
                state = `not serving JetStream: ${(err as Error).message}`;
                await session?.nc.close().catch(() => undefined);
                session = undefined;
            }
            if (remainingMs(deadline) === 0) {
                throw new Error(`NATS node ${inputs.node} (${inputs.server}) was not current within timeoutSeconds=${inputs.timeoutSeconds}: ${state}. ` +
                    "Do not replace another NATS node until it is; run pulumi up again to wait again");
            }
            log(`${inputs.node}: attempt ${attempt} at ${((Date.now() - started) / 1000).toFixed(1)}s: ${state}; giving up in ${Math.ceil(remainingMs(deadline) / 1000)}s`);
            await pause(Math.min(POLL_INTERVAL_MS, remainingMs(deadline)));
        }
    } finally {
        // close, not drain: drain waits for a server, and the host would wait with it.
        await session?.nc.close().catch(() => undefined);
    }
}

/** Leaves the mark of a replacement not yet seen current (the inputs carry its location and the deploy's key). */
async function markPending(inputs: NatsRejoinInputs): Promise<void> {
    const mark: RejoinPending = { node: inputs.node, instanceId: inputs.instanceId, since: new Date().toISOString() };
    const response = await signedObjectRequest(inputs, inputs, "PUT", Buffer.from(JSON.stringify(mark) + "\n", "utf8"));
    if (response.status !== 200) throw new Error(`PUT ${objectWhere(inputs)} failed: HTTP ${response.status} ${response.errorCode ?? ""}; the deploy's key needs read_write on the runtime bucket`);
}

/** Removes the mark; one that is not there is fine. */
async function clearPending(inputs: NatsRejoinInputs): Promise<void> {
    const response = await signedObjectRequest(inputs, inputs, "DELETE");
    if (![200, 204, 404].includes(response.status)) throw new Error(`DELETE ${objectWhere(inputs)} failed: HTTP ${response.status} ${response.errorCode ?? ""}`);
}

export const natsRejoinProvider: pulumi.dynamic.ResourceProvider<NatsRejoinInputs, NatsRejoinOutputs> = {
    async check(_olds: NatsRejoinInputs, news: NatsRejoinInputs) {
        return { inputs: news, failures: knownFailures(news, natsRejoinInputProblems(news)) };
    },

    async create(inputs: NatsRejoinInputs) {
        const outs = await waitForRejoin(inputs);
        await clearPending(inputs);
        return { id: crypto.randomUUID(), outs };
    },

    async diff(_id: string, olds: NatsRejoinOutputs, news: NatsRejoinInputs) {
        const changed = changedFields(olds, news, WAIT_FIELDS);
        return { changes: changed.length > 0, diffs: changed, replaces: [], deleteBeforeReplace: false };
    },

    async update(_id: string, olds: NatsRejoinOutputs, news: NatsRejoinInputs) {
        // New keys or a new deadline are kept for later waits and for delete; they are no rejoin to wait for.
        if (changedFields(olds, news, REJOIN_FIELDS).length === 0) return { outs: { ...news, streams: olds.streams } };
        // The last confirmed instance is in the olds: a new one is a replacement, marked until it is seen current.
        if (olds.instanceId !== news.instanceId) await markPending(news);
        const outs = await waitForRejoin(news);
        await clearPending(news);
        return { outs };
    },

    read: readFromState<NatsRejoinOutputs>("NATS rejoin wait"),

    async delete(_id: string, props: NatsRejoinOutputs) {
        await clearPending(props);
    },
};

export interface NatsRejoinArgs extends S3ObjectAccessArgs {
    node: pulumi.Input<string>;
    instanceId: pulumi.Input<string>;
    server: pulumi.Input<string>;
    tlsServerName: pulumi.Input<string>;
    caPem: pulumi.Input<string>;
    certPem: pulumi.Input<string>;
    keyPem: pulumi.Input<string>;
    timeoutSeconds: pulumi.Input<number>;
}

/** Waits, on create and on every replacement of the node's instance, until the node is current again. */
export class NatsRejoin extends pulumi.dynamic.Resource {
    /** Streams with a replica on the node, current when the last wait ended. */
    public readonly streams!: pulumi.Output<string[]>;

    constructor(name: string, args: NatsRejoinArgs, opts?: pulumi.CustomResourceOptions) {
        super(natsRejoinProvider, name, { ...withSecretCredentials(args), keyPem: pulumi.secret(args.keyPem), streams: undefined },
            pulumi.mergeOptions(opts, { additionalSecretOutputs: ["keyPem", "accessKeyId", "secretAccessKey"] }), "meshstack", "NatsRejoin");
    }
}

