/**
 * A JetStream key-value bucket, managed over the cluster's client port with
 * TLS and a client certificate. Replicas, history and TTL change in place
 * (a stream update keeps every key, the seed's R1 -> R3 step); only a new
 * bucket name replaces it.
 *
 * The provider runs in the engine's dynamic-provider host from its
 * serialized text: NATS packages are required inside the functions, and
 * every wait has its own deadline (the host ignores cancellation).
 */
import * as pulumi from "@pulumi/pulumi";
import { JETSTREAM_MAX_REPLICAS, KV_MAX_HISTORY } from "../lib/limits";
import { isPermanentNatsError, NatsSession, openNatsSession, pause, remainingMs } from "./natsSession";
import { changedFields, knownFailures } from "./unknowns";

/** KV deduplication window cap, as the NATS clients set it for buckets with a TTL. */
const KV_MAX_DUPLICATE_WINDOW_MS = 2 * 60 * 1000;

export interface JetStreamKvArgs {
    /** Client URLs of the cluster, e.g. tls://203.0.113.7:4222. Any reachable one is enough. */
    servers: pulumi.Input<pulumi.Input<string>[]>;
    /**
     * Name to verify the servers' certificates against when the URLs name IP
     * addresses that are not in the certificates (public IPs; see natsServiceName).
     */
    tlsServerName?: pulumi.Input<string>;
    /** CA that signed the servers' data-plane certificates. */
    caPem: pulumi.Input<string>;
    /** Client certificate signed by the client CA. */
    certPem: pulumi.Input<string>;
    /** Its private key; secret in inputs and state. */
    keyPem: pulumi.Input<string>;
    /** Bucket name: letters, digits, - and _. Changing it replaces the bucket. */
    bucket: pulumi.Input<string>;
    /** Replication factor, 1 to 5 and at most the cluster size. Changes in place. */
    replicas: pulumi.Input<number>;
    /** Revisions kept per key, 1 to 64 (default 1). Changes in place. */
    history?: pulumi.Input<number>;
    /** Seconds a value lives; 0 keeps values forever (default 0). Changes in place. */
    ttlSeconds?: pulumi.Input<number>;
    /** How long create, update and delete wait for the cluster (nodes still booting, replicas catching up). Default 300. */
    timeoutSeconds?: pulumi.Input<number>;
}

export interface JetStreamKvInputs {
    servers: string[];
    tlsServerName?: string;
    caPem: string;
    certPem: string;
    keyPem: string;
    bucket: string;
    replicas: number;
    history: number;
    ttlSeconds: number;
    timeoutSeconds: number;
}

export interface JetStreamKvOutputs extends JetStreamKvInputs {
    /** The backing stream, KV_<bucket>. */
    streamName: string;
    /** Server names holding a replica, as reported after the last change. */
    peers: string[];
}

export function jetStreamKvInputProblems(inputs: Partial<JetStreamKvInputs>): { property: string; reason: string }[] {
    const problems: { property: string; reason: string }[] = [];
    const integer = (property: keyof JetStreamKvInputs, min: number, max: number, allowed: string) => {
        const value = inputs[property];
        if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
            problems.push({ property, reason: `got ${JSON.stringify(value)}; allowed: ${allowed}` });
        }
    };
    if (typeof inputs.bucket !== "string" || !/^[A-Za-z0-9_-]{1,200}$/.test(inputs.bucket)) {
        problems.push({ property: "bucket", reason: `got ${JSON.stringify(inputs.bucket)}; allowed: letters, digits, - and _` });
    }
    integer("replicas", 1, JETSTREAM_MAX_REPLICAS, `an integer from 1 to ${JETSTREAM_MAX_REPLICAS}, at most the number of NATS nodes`);
    integer("history", 1, KV_MAX_HISTORY, `an integer from 1 to ${KV_MAX_HISTORY}`);
    integer("ttlSeconds", 0, 10 * 365 * 24 * 3600, "0 (keep forever) or a whole number of seconds");
    integer("timeoutSeconds", 5, 3600, "an integer from 5 to 3600");
    if (!Array.isArray(inputs.servers) || inputs.servers.length === 0 || !inputs.servers.every((s) => /^(tls|nats):\/\/[^/\s]+$/.test(s))) {
        problems.push({ property: "servers", reason: `got ${JSON.stringify(inputs.servers)}; allowed: a non-empty list of tls://host:port URLs` });
    }
    for (const property of ["caPem", "certPem", "keyPem"] as const) {
        if (typeof inputs[property] !== "string" || !inputs[property]!.includes("-----BEGIN")) {
            problems.push({ property, reason: "is required (PEM)" });
        }
    }
    return problems;
}

function log(message: string): void {
    console.log(`[jetstream-kv] ${message}`);
}

/**
 * Runs `work` on a session that is closed afterwards, with one deadline
 * (timeoutSeconds) for connecting and working alike.
 */
async function withSession<T>(operation: string, inputs: JetStreamKvInputs, work: (session: NatsSession, deadline: number) => Promise<T>): Promise<T> {
    const deadline = Date.now() + inputs.timeoutSeconds * 1000;
    let session: NatsSession;
    try {
        session = await openNatsSession(inputs, deadline, "meshstack-jetstream-kv", log);
    } catch (err) {
        throw new Error(`${operation} of KV bucket ${inputs.bucket} failed: ${(err as Error).message} (timeoutSeconds=${inputs.timeoutSeconds})`);
    }
    try {
        return await work(session, deadline);
    } catch (err) {
        throw new Error(`${operation} of KV bucket ${inputs.bucket} on NATS at ${inputs.servers.join(", ")} failed: ${(err as Error).message}`);
    } finally {
        // close, not drain: drain waits for a server, and the host would wait with it.
        await session.nc.close().catch(() => undefined);
    }
}

/** Retries `step` on transient cluster errors (no leader yet, peers still joining) until the deadline. */
async function retrying<T>(what: string, deadline: number, step: () => Promise<T>): Promise<T> {
    for (;;) {
        try {
            return await step();
        } catch (err) {
            if (isPermanentNatsError(err) || /stream name already in use|invalid|bucket name/i.test(String((err as Error).message))) throw err;
            if (remainingMs(deadline) === 0) throw new Error(`${what}: ${(err as Error).message} (gave up at the timeoutSeconds deadline)`);
            log(`${what}: ${(err as Error).message}; retrying`);
            await pause(Math.min(1000, remainingMs(deadline)));
        }
    }
}

function streamNameOf(bucket: string): string {
    return `KV_${bucket}`;
}

function streamSettings(inputs: JetStreamKvInputs): Record<string, number> {
    const ttlNanos = inputs.ttlSeconds * 1e9;
    return {
        num_replicas: inputs.replicas,
        max_msgs_per_subject: inputs.history,
        max_age: ttlNanos,
        // A stream's duplicate window may not exceed its max age.
        ...(inputs.ttlSeconds > 0 ? { duplicate_window: Math.min(inputs.ttlSeconds * 1000, KV_MAX_DUPLICATE_WINDOW_MS) * 1e6 } : {}),
    };
}

/** Waits until the stream has a leader and every replica is current, so a later node loss cannot lose acknowledged keys. */
async function waitForReplicas(session: NatsSession, inputs: JetStreamKvInputs, deadline: number): Promise<string[]> {
    const stream = streamNameOf(inputs.bucket);
    for (;;) {
        let state = "no stream info yet";
        try {
            const info = await session.jsm.streams.info(stream);
            const cluster = info.cluster ?? {};
            const replicas: { name: string; current: boolean; offline?: boolean }[] = cluster.replicas ?? [];
            const current = replicas.filter((r) => r.current && !r.offline);
            if (cluster.leader && info.config.num_replicas === inputs.replicas && current.length === inputs.replicas - 1) {
                return [cluster.leader, ...current.map((r) => r.name)].sort();
            }
            state = `leader ${cluster.leader ?? "none"}, ${current.length}/${inputs.replicas - 1} followers current`;
        } catch (err) {
            state = (err as Error).message;
        }
        if (remainingMs(deadline) === 0) throw new Error(`stream ${stream} did not reach ${inputs.replicas} current replicas within timeoutSeconds=${inputs.timeoutSeconds} (${state})`);
        log(`waiting for ${stream}: ${state}`);
        await pause(Math.min(500, remainingMs(deadline)));
    }
}

/** Brings an existing bucket's stream to the wanted settings; a no-op when they already match. */
async function applySettings(session: NatsSession, inputs: JetStreamKvInputs, deadline: number): Promise<void> {
    const stream = streamNameOf(inputs.bucket);
    const wanted = streamSettings(inputs);
    await retrying(`update ${stream}`, deadline, async () => {
        const info = await session.jsm.streams.info(stream);
        const differs = Object.entries(wanted).some(([key, value]) => (info.config[key] ?? 0) !== value);
        if (differs) {
            log(`updating ${stream}: ${JSON.stringify(wanted)}`);
            await session.jsm.streams.update(stream, { ...info.config, ...wanted });
        }
    });
}

async function ensureBucket(inputs: JetStreamKvInputs): Promise<JetStreamKvOutputs> {
    return withSession("create", inputs, async (session, deadline) => {
        const { Kvm } = require("@nats-io/kv");
        const kvm = new Kvm(session.nc);
        await retrying(`create bucket ${inputs.bucket}`, deadline, () =>
            kvm.create(inputs.bucket, { replicas: inputs.replicas, history: inputs.history, ttl: inputs.ttlSeconds * 1000 }),
        );
        // create() opens a bucket that already exists as it is; adopt it with our settings.
        await applySettings(session, inputs, deadline);
        const peers = await waitForReplicas(session, inputs, deadline);
        return { ...inputs, streamName: streamNameOf(inputs.bucket), peers };
    });
}

function withDefaults(inputs: Partial<JetStreamKvInputs>): JetStreamKvInputs {
    return { history: 1, ttlSeconds: 0, timeoutSeconds: 300, ...inputs } as JetStreamKvInputs;
}

/** Fields whose change is applied to the live bucket without replacing it. */
const IN_PLACE_FIELDS = ["replicas", "history", "ttlSeconds", "servers", "tlsServerName", "caPem", "certPem", "keyPem", "timeoutSeconds"] as const;

export const jetStreamKvProvider: pulumi.dynamic.ResourceProvider<JetStreamKvInputs, JetStreamKvOutputs> = {
    async check(_olds: JetStreamKvInputs, news: Partial<JetStreamKvInputs>) {
        const inputs = withDefaults(news);
        return { inputs, failures: knownFailures(inputs, jetStreamKvInputProblems(inputs)) };
    },

    async create(inputs: JetStreamKvInputs) {
        const outs = await ensureBucket(inputs);
        return { id: outs.streamName, outs };
    },

    async diff(_id: string, olds: JetStreamKvOutputs, news: JetStreamKvInputs) {
        const changed = changedFields(olds, news, IN_PLACE_FIELDS);
        const replaces = changedFields(olds, news, ["bucket"] as const);
        return { changes: changed.length > 0 || replaces.length > 0, diffs: [...changed, ...replaces], replaces, deleteBeforeReplace: false };
    },

    async update(_id: string, _olds: JetStreamKvOutputs, news: JetStreamKvInputs) {
        return withSession("update", news, async (session, deadline) => {
            await applySettings(session, news, deadline);
            const peers = await waitForReplicas(session, news, deadline);
            return { outs: { ...news, streamName: streamNameOf(news.bucket), peers } };
        });
    },

    async read(id: string, props?: JetStreamKvOutputs) {
        if (!props) throw new Error("a JetStream KV bucket cannot be imported yet: create it with pulumi up, which adopts an existing bucket of the same name");
        return withSession("read", props, async (session) => {
            const info = await session.jsm.streams.info(props.streamName).catch((err: Error) => {
                if (/not found/i.test(err.message)) return undefined;
                throw err;
            });
            // An empty id tells the engine the bucket is gone.
            if (!info) return { id: "", props: props };
            const ttlSeconds = Math.round((info.config.max_age ?? 0) / 1e9);
            return { id, props: { ...props, replicas: info.config.num_replicas, history: info.config.max_msgs_per_subject, ttlSeconds } };
        });
    },

    async delete(_id: string, props: JetStreamKvOutputs) {
        return withSession("delete", props, async (session, deadline) => {
            await retrying(`delete ${props.streamName}`, deadline, async () => {
                await session.jsm.streams.delete(props.streamName).catch((err: Error) => {
                    if (!/not found/i.test(err.message)) throw err;
                });
            });
            log(`deleted ${props.streamName}`);
        });
    },
};

/** A JetStream KV bucket on a NATS cluster. */
export class JetStreamKv extends pulumi.dynamic.Resource {
    public readonly streamName!: pulumi.Output<string>;
    public readonly bucket!: pulumi.Output<string>;
    public readonly replicas!: pulumi.Output<number>;
    public readonly history!: pulumi.Output<number>;
    public readonly ttlSeconds!: pulumi.Output<number>;
    /** Server names holding a replica after the last create or update. */
    public readonly peers!: pulumi.Output<string[]>;
    /** The client key, kept in state so delete can connect; secret. */
    public readonly keyPem!: pulumi.Output<string>;

    constructor(name: string, args: JetStreamKvArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            jetStreamKvProvider,
            name,
            {
                ...args,
                keyPem: pulumi.secret(args.keyPem),
                streamName: undefined,
                peers: undefined,
            },
            pulumi.mergeOptions(opts, { additionalSecretOutputs: ["keyPem"] }),
            "meshstack",
            "JetStreamKv",
        );
    }
}
