/**
 * A Proxmox VE API client: one TLS connection per request, verified before a
 * byte of the request (and its token) is sent; Proxmox VE's reply envelope
 * read into status, reason, data and per-parameter errors; failures that
 * say why; transient failures retried with backoff.
 *
 * It knows nothing of Pulumi or of what the calls are for: the caller names
 * itself for the messages. The engine never cancels a dynamic provider, so
 * every request has its own deadline.
 *
 * Captured by value into serialized providers: plain functions only.
 */
import * as http from "http";
import * as tls from "tls";
import { formatSeconds } from "../../lib/duration";

/** Where the API is and how to prove who is calling: what a stack configures. */
export interface PveEndpoint {
    /** https://host:8006, no trailing slash. */
    endpoint: string;
    node: string;
    /** USER@REALM!TOKENID */
    tokenId: string;
    tokenSecret: string;
    /** PEM CA bundle that signs the endpoint's certificate; "" for the system CAs. */
    caBundlePem: string;
    /** SHA-256 fingerprint the endpoint's certificate must have (AB:CD:...); "" to verify the chain instead. */
    tlsFingerprint: string;
}

/** A PveEndpoint with the limit every request is held to. */
export interface PveConnection extends PveEndpoint {
    /** Limit of one HTTP request, connecting included. */
    requestTimeoutMs: number;
}

export interface RetryPolicy {
    /** Tries of one call in all, the first included. */
    attempts: number;
    initialDelayMs: number;
    multiplier: number;
    maxDelayMs: number;
    /** Each wait is scaled by a random factor in [1 - jitter, 1 + jitter]. */
    jitter: number;
}

/** Who makes the calls, as the messages name it: a failure must say which guest on which node it concerns. */
export interface PveCaller {
    conn: PveConnection;
    /** For transient failures only: lock timeouts and "got no worker upid". */
    retry: RetryPolicy;
    /** In errors, with where to look: "GoldenGuest web-1 (CT 101 on node pve)". */
    name: string;
    /** In progress lines: "GoldenGuest web-1 (CT 101)". */
    shortName: string;
}

export interface PveReply {
    status: number;
    /** The reason phrase: where Proxmox VE puts its error message. */
    reason: string;
    data: any;
    /** The body's `errors`: per-parameter messages of a 400 "Parameter verification failed." */
    errors?: Record<string, string>;
}

/** An error from one API call, with what the retry policy needs to judge it. */
export interface PveFailure extends Error {
    pveStatus?: number;
    pveReason?: string;
    pveErrors?: Record<string, string>;
    transient: boolean;
}

export function pveFailure(message: string, fields: { status?: number; reason?: string; errors?: Record<string, string>; transient?: boolean } = {}): PveFailure {
    return Object.assign(new Error(message), { pveStatus: fields.status, pveReason: fields.reason, pveErrors: fields.errors, transient: fields.transient ?? false });
}

/**
 * A task status poll the node answers "no such task": pve-manager's Tasks.pm
 * raises a parameter exception, so the reason phrase is only "Parameter
 * verification failed." and the words are in the body's `errors.upid`.
 */
export function isUnknownTask(status: number | undefined, errors: Record<string, string> | undefined): boolean {
    return status === 400 && /no such task/.test(String(errors?.upid ?? ""));
}

/** A worker that did not start: fork_worker kills the child before it runs anything. */
export const NO_WORKER = /got no worker upid/;

/** HTTP >= 500 with these words: a lock held a moment too long or a worker that did not start. */
const TRANSIENT_REASONS = [/got timeout/, NO_WORKER];

export function isTransient(status: number, reason: string): boolean {
    return status >= 500 && TRANSIENT_REASONS.some((re) => re.test(reason));
}

/** What Proxmox VE answers for a guest (or its config file) that is not there. */
export function isMissing(err: unknown): boolean {
    const f = err as PveFailure;
    return f.pveStatus === 500 && /does not exist/.test(f.pveReason ?? "");
}

/** Node reports AB:CD:...; a pinned fingerprint may be written in lower case: compare the hex digits only. */
export function normalizedFingerprint(text: string): string {
    return text.replace(/:/g, "").toUpperCase();
}

function connect(conn: PveConnection, deadline: number): Promise<tls.TLSSocket> {
    const url = new URL(conn.endpoint);
    const pinned = conn.tlsFingerprint !== "";
    return new Promise((resolve, reject) => {
        const socket = tls.connect({
            host: url.hostname,
            port: Number(url.port || 443),
            servername: /^[0-9.]+$|:/.test(url.hostname) ? undefined : url.hostname,
            ca: conn.caBundlePem ? conn.caBundlePem : undefined,
            // A pinned certificate is checked below instead of against a CA.
            rejectUnauthorized: !pinned,
        });
        const timer = setTimeout(() => socket.destroy(new Error(`TLS connect timed out after ${conn.requestTimeoutMs} ms`)), Math.max(1, deadline - Date.now()));
        socket.once("error", (err) => {
            clearTimeout(timer);
            reject(err);
        });
        socket.once("secureConnect", () => {
            clearTimeout(timer);
            if (pinned) {
                const got = socket.getPeerCertificate().fingerprint256 ?? "";
                if (normalizedFingerprint(got) !== normalizedFingerprint(conn.tlsFingerprint)) {
                    socket.destroy();
                    reject(new Error(`the server's certificate has SHA-256 fingerprint ${got}, not the pinned ${conn.tlsFingerprint}`));
                    return;
                }
            }
            resolve(socket);
        });
    });
}

/**
 * The envelope of a reply: `{"data": ...}`, and for parameter errors
 * `"errors": {param: message}`. Proxmox VE puts an error's message in the
 * reason phrase, not the body; a body's `message` serves only when the
 * phrase is empty. A body that is not JSON is read as an empty one, so the
 * status and reason still reach the error.
 */
export function readEnvelope(statusCode: number | undefined, statusMessage: string | undefined, text: string): PveReply {
    let body: any = {};
    try {
        body = text ? JSON.parse(text) : {};
    } catch {
        body = {};
    }
    const reason = (statusMessage ?? "").trim() || String(body?.message ?? "").trim();
    const errors = body?.errors && typeof body.errors === "object" ? (body.errors as Record<string, string>) : undefined;
    return { status: statusCode ?? 0, reason, data: body?.data, errors };
}

/** Parameters go in the query of a GET or DELETE and as a form body of a POST or PUT, as pveproxy reads them. */
export function requestLine(method: string, apiPath: string, params: Record<string, string | number>): { path: string; form: string; withBody: boolean } {
    const form = new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)])).toString();
    const withBody = method === "POST" || method === "PUT";
    return { path: `/api2/json${apiPath}${!withBody && form ? `?${form}` : ""}`, form, withBody };
}

async function pveRequest(conn: PveConnection, method: string, apiPath: string, params: Record<string, string | number> = {}): Promise<PveReply> {
    const deadline = Date.now() + conn.requestTimeoutMs;
    const socket = await connect(conn, deadline);
    const { path: fullPath, form, withBody } = requestLine(method, apiPath, params);
    const url = new URL(conn.endpoint);
    return new Promise((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined;
        const req = http.request({
            method, path: fullPath, createConnection: () => socket,
            headers: {
                Host: url.host,
                Authorization: `PVEAPIToken=${conn.tokenId}=${conn.tokenSecret}`,
                Accept: "application/json",
                ...(withBody ? { "Content-Type": "application/x-www-form-urlencoded", "Content-Length": Buffer.byteLength(form) } : {}),
            },
        }, (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (chunk) => (text += chunk));
            res.on("end", () => {
                clearTimeout(timer);
                socket.destroy();
                resolve(readEnvelope(res.statusCode, res.statusMessage, text));
            });
        });
        timer = setTimeout(() => req.destroy(new Error(`no answer within ${conn.requestTimeoutMs} ms`)), Math.max(1, deadline - Date.now()));
        req.on("error", (err) => {
            clearTimeout(timer);
            socket.destroy();
            reject(err);
        });
        if (withBody) req.write(form);
        req.end();
    });
}

export function describeCall(caller: PveCaller, operation: string, method: string, apiPath: string): string {
    return `${caller.name}: ${operation}: ${method} ${caller.conn.endpoint}/api2/json${apiPath}`;
}

/** A reply's status, reason and per-parameter errors in one line, as an error message quotes it. */
export function replyDetail(reply: PveReply): string {
    return `HTTP ${reply.status} ${reply.reason}${reply.errors ? ` (${Object.entries(reply.errors).map(([k, v]) => `${k}: ${String(v).trim()}`).join("; ")})` : ""}`;
}

/** The wait before retry number `attempt` + 1: exponential, capped, jittered so that callers who failed together do not retry together. */
export function backoffMs(retry: RetryPolicy, attempt: number): number {
    const base = Math.min(retry.maxDelayMs, retry.initialDelayMs * retry.multiplier ** attempt);
    return Math.max(0, Math.round(base * (1 + retry.jitter * (2 * Math.random() - 1))));
}

export function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One API call: transient failures retried within the policy's bound, anything else thrown at once. */
export async function pveCall(
    caller: PveCaller, operation: string, method: string, apiPath: string, params: Record<string, string | number> = {},
    options: { retryNoWorker?: boolean } = {},
): Promise<any> {
    const what = describeCall(caller, operation, method, apiPath);
    const retry = caller.retry;
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
        let reply: PveReply;
        try {
            reply = await pveRequest(caller.conn, method, apiPath, params);
        } catch (err) {
            throw pveFailure(`${what} failed: ${(err as Error).message}`);
        }
        if (reply.status >= 200 && reply.status < 300) return reply.data;
        const detail = replyDetail(reply);
        if (reply.status === 401) {
            throw pveFailure(`${what} failed: ${detail}: authorization failed: the API token ${caller.conn.tokenId} or its secret is wrong, expired or deleted`, reply);
        }
        if (reply.status === 403) {
            throw pveFailure(`${what} failed: ${detail}: the API token ${caller.conn.tokenId} lacks this privilege (give its role the privilege, or untick privilege separation)`, reply);
        }
        const transient = isTransient(reply.status, reply.reason) && (options.retryNoWorker !== false || !NO_WORKER.test(reply.reason));
        if (!transient) throw pveFailure(`${what} failed: ${detail}`, reply);
        if (attempt >= retry.attempts) {
            throw pveFailure(`${what} failed: ${detail}; still failing after ${attempt} attempts over ${formatSeconds(Date.now() - started)} (retry bound reached)`, {
                status: reply.status, reason: reply.reason, transient: true,
            });
        }
        const wait = backoffMs(retry, attempt - 1);
        console.log(`${what}: ${detail}; transient, attempt ${attempt} of ${retry.attempts}, retrying in ${formatSeconds(wait)}`);
        await sleep(wait);
    }
}
