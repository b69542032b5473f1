/**
 * A deploy-side session on the NATS cluster's client port: TLS with the
 * deployer's client certificate, the JetStream API reached, retried until a
 * deadline because on an `up` the nodes may still be booting or rejoining.
 * Shared by the dynamic providers that talk to the cluster; they run from
 * their serialized text, so the NATS packages are required inside.
 */
import { StreamPlacement } from "../lib/natsRollout";

/** Where and as whom the deploy connects. */
export interface NatsClientAccess {
    /** Client URLs, e.g. tls://203.0.113.7:4222. */
    servers: string[];
    /** Name to verify the servers' certificates against when the URLs name IP addresses (natsServiceName). */
    tlsServerName?: string;
    caPem: string;
    certPem: string;
    keyPem: string;
}

export interface NatsSession {
    nc: any;
    jsm: any;
}

export function remainingMs(deadline: number): number {
    return Math.max(0, deadline - Date.now());
}

export async function pause(ms: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Errors no retry fixes: wrong certificates or permissions. */
export function isPermanentNatsError(err: unknown): boolean {
    return /certificate|authorization|permission|self[- ]signed|unable to verify/i.test(String((err as Error)?.message ?? err));
}

/**
 * One connection that reaches the JetStream API, or the error why not. With
 * one server URL the session stays on that server (no reconnect elsewhere),
 * so an answer proves that server routes to the JetStream meta leader.
 */
export async function connectNatsSession(access: NatsClientAccess, timeoutMs: number, clientName: string): Promise<NatsSession> {
    const { connect } = require("@nats-io/transport-node");
    const { jetstreamManager } = require("@nats-io/jetstream");
    const nc = await connect({
        servers: access.servers,
        timeout: timeoutMs,
        tls: { ca: access.caPem, cert: access.certPem, key: access.keyPem, ...(access.tlsServerName ? { servername: access.tlsServerName } : {}) },
        name: clientName,
        ...(access.servers.length === 1 ? { reconnect: false } : {}),
    });
    try {
        return { nc, jsm: await jetstreamManager(nc, { timeout: timeoutMs, checkAPI: true }) };
    } catch (err) {
        await nc.close().catch(() => undefined);
        throw err;
    }
}

/** The refusal no retry fixes, as an error naming where; undefined for errors worth retrying. */
export function natsRefusal(access: NatsClientAccess, err: unknown): Error | undefined {
    return isPermanentNatsError(err) ? new Error(`NATS at ${access.servers.join(", ")} refused the connection: ${(err as Error).message}`) : undefined;
}

/** connectNatsSession, retried until the deadline: on a first `up` the nodes may still be booting. */
export async function openNatsSession(access: NatsClientAccess, deadline: number, clientName: string, log: (message: string) => void): Promise<NatsSession> {
    return retryConnect(access, deadline, log, (timeoutMs) => connectNatsSession(access, timeoutMs, clientName));
}

/** The system account's user and password (NATS_SYSTEM_USER in cloudinit/nats.ts). */
export interface NatsSystemUser {
    user: string;
    password: string;
}

/**
 * A connection as the system account's user, for what only the system
 * account may ask (removing a server from the JetStream meta group); the
 * certificate is still required, the password picks the account. It has no
 * JetStream API of its own. Retried until the deadline.
 */
export async function openSystemConnection(access: NatsClientAccess, system: NatsSystemUser, deadline: number, clientName: string, log: (message: string) => void): Promise<any> {
    const { connect } = require("@nats-io/transport-node");
    return retryConnect(access, deadline, log, (timeoutMs) => connect({
        servers: access.servers,
        timeout: timeoutMs,
        tls: { ca: access.caPem, cert: access.certPem, key: access.keyPem, ...(access.tlsServerName ? { servername: access.tlsServerName } : {}) },
        name: clientName,
        user: system.user,
        pass: system.password,
    }));
}

async function retryConnect<T>(access: NatsClientAccess, deadline: number, log: (message: string) => void, connectOnce: (timeoutMs: number) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
        let reason: string;
        try {
            return await connectOnce(Math.max(1000, Math.min(5000, remainingMs(deadline))));
        } catch (err) {
            const refusal = natsRefusal(access, err);
            if (refusal) throw refusal;
            reason = (err as Error)?.message ?? String(err);
        }
        if (remainingMs(deadline) === 0) throw new Error(`NATS at ${access.servers.join(", ")} not reachable before the deadline: ${reason}`);
        log(`attempt ${attempt}: waiting for JetStream at ${access.servers.join(", ")}: ${reason}; giving up in ${Math.ceil(remainingMs(deadline) / 1000)}s`);
        await pause(Math.min(2000, remainingMs(deadline)));
    }
}

/**
 * Every stream's placement (or only those of `streams`), from its leader; a
 * stream whose info does not come (offline, no leader yet) says why.
 */
export async function streamPlacements(session: NatsSession, streams?: string[]): Promise<StreamPlacement[]> {
    const found: StreamPlacement[] = [];
    for await (const stream of streams ?? session.jsm.streams.names()) {
        try {
            const info = await session.jsm.streams.info(stream);
            found.push({ stream, leader: info.cluster?.leader, replicas: info.cluster?.replicas ?? [], configuredReplicas: info.config.num_replicas });
        } catch (err) {
            found.push({ stream, replicas: [], unavailable: (err as Error).message });
        }
    }
    return found;
}

/**
 * Where the durable consumers of `stream` are, each named `<stream> > <consumer>`
 * (ephemeral ones are dropped with a leaving server, not moved); a stream
 * whose consumers cannot be listed says why under its own name.
 */
export async function consumerPlacements(session: NatsSession, stream: string): Promise<StreamPlacement[]> {
    const found: StreamPlacement[] = [];
    try {
        for await (const info of await session.jsm.consumers.list(stream)) {
            if (!info.config.durable_name) continue;
            found.push({ stream: `${stream} > ${info.name}`, leader: info.cluster?.leader, replicas: info.cluster?.replicas ?? [] });
        }
    } catch (err) {
        found.push({ stream, replicas: [], unavailable: (err as Error).message });
    }
    return found;
}
