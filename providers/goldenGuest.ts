/**
 * GoldenGuest: one Proxmox VE container restored from a golden archive with
 * its identity reset, driven through the Proxmox VE API with an API token.
 *
 * What a restore does not do on its own, and this provider does:
 * - A restore keeps the archived MAC unless `unique=1`: every guest of one
 *   golden would share one MAC. Restore always passes `unique=1`, then checks
 *   that no netN kept the archive's MAC, and resets any that did.
 * - A restore keeps the archived hostname: the restore passes the guest's
 *   hostname, and it is checked afterwards.
 * - A restore regenerates neither SSH host keys nor the machine-id. Only a
 *   golden cleaned for both, with a first-boot unit that makes the keys
 *   (cloudinit/goldenPrepare.ts), gives guests their own identity and a
 *   working sshd, so an archive without the prepared marker in its
 *   description is refused unless the stack says otherwise.
 * - A resize task holds the config lock while it grows the filesystem; a
 *   config write sent meanwhile fails after 10 s with "got timeout". Every
 *   task is waited for before the next call, one guest's calls are strictly
 *   sequential, and lock timeouts are retried as a safety net.
 *
 * The engine never cancels a dynamic provider, so every request and every
 * task wait has its own deadline.
 */
import * as http from "http";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "tls";
import { GOLDEN_PREPARED_MARKER } from "../cloudinit/goldenPrepare";
import { containsUnknown as isUnknown } from "./unknowns";
import { formatSeconds } from "../lib/duration";

export interface RetryPolicy {
    /** Tries of one call in all, the first included. */
    attempts: number;
    initialDelayMs: number;
    multiplier: number;
    maxDelayMs: number;
    /** Each wait is scaled by a random factor in [1 - jitter, 1 + jitter]. */
    jitter: number;
}

export interface GoldenGuestPolicy {
    /** Limit of one HTTP request. */
    requestTimeoutMs: number;
    /** For transient failures only: lock timeouts and "got no worker upid". */
    retry: RetryPolicy;
    /** Wait between two task status polls. */
    taskPollIntervalMs: number;
    /** How long after dispatch a task may still be unknown ("no such task"). */
    noSuchTaskGraceMs: number;
    /** Deadline of each task, by task type. */
    taskTimeoutMs: { vzrestore: number; resize: number; vzstart: number; vzstop: number; vzdestroy: number };
    /** How long a started guest may take to report status running. */
    runningTimeoutMs: number;
    /** How long a running guest may take to report an IPv4 address (where the API reports interfaces). */
    ipv4TimeoutMs: number;
}

/**
 * Bounds of the real thing: bpg's provider retries such failures three
 * times with exponential backoff and polls tasks every second; here five
 * retries (6 tries, waits 1+2+4+8+15 s at most, about 30 s) outlast one 10 s
 * config-lock wait twice over. Restores of a few hundred MB take a minute or
 * two; their deadline leaves ten times that.
 */
export const DEFAULT_GOLDEN_GUEST_POLICY: GoldenGuestPolicy = {
    requestTimeoutMs: 60_000,
    retry: { attempts: 6, initialDelayMs: 1_000, multiplier: 2, maxDelayMs: 15_000, jitter: 0.3 },
    taskPollIntervalMs: 1_000,
    noSuchTaskGraceMs: 10_000,
    taskTimeoutMs: { vzrestore: 20 * 60_000, resize: 10 * 60_000, vzstart: 5 * 60_000, vzstop: 5 * 60_000, vzdestroy: 10 * 60_000 },
    runningTimeoutMs: 2 * 60_000,
    ipv4TimeoutMs: 2 * 60_000,
};

export interface GoldenMountPoint {
    /** Absolute path inside the guest. */
    path: string;
    sizeGiB: number;
    /** Storage for the volume. */
    storage: string;
}

/** What the provider receives: the args, resolved, with secrets unwrapped by the engine. */
export interface GoldenGuestInputs {
    /** https://host:8006 */
    endpoint: string;
    node: string;
    /** USER@REALM!TOKENID */
    tokenId: string;
    tokenSecret: string;
    /** PEM CA bundle that signs the endpoint's certificate; "" for the system CAs. */
    caBundlePem: string;
    /** SHA-256 fingerprint the endpoint's certificate must have (AB:CD:...); "" to verify the chain instead. */
    tlsFingerprint: string;
    /** Storage for the restored rootfs. */
    storage: string;
    /** Volume id of the golden archive, e.g. local:backup/vzdump-lxc-9000-2026_06_09-20_41_10.tar.zst */
    archive: string;
    /** Restore an archive without the prepared marker. */
    allowUnpreparedArchive: boolean;
    vmid: number;
    hostname: string;
    /** Size of the rootfs in GiB; 0 keeps the archive's. Only grows. */
    rootfsSizeGiB: number;
    mountPoints: GoldenMountPoint[];
    startOnBoot: boolean;
    policy: GoldenGuestPolicy;
}

/** What the guest looked like at the last create, update or read. */
export interface GoldenGuestObserved {
    hostname: string;
    /** netN -> MAC. */
    macs: Record<string, string>;
    rootfsSizeGiB: number;
    /** mpN -> mount path and size. */
    mountPoints: Record<string, { path: string; sizeGiB: number }>;
    startOnBoot: boolean;
    running: boolean;
    /** First IPv4 address the API reported, "" when none. */
    ipv4: string;
}

/** State: the inputs (the token secret kept, secret, because delete needs it) and what was observed. */
export interface GoldenGuestOutputs extends GoldenGuestInputs {
    /** netN -> MAC stored in the archive: no guest may keep one of them. */
    archiveMacs: Record<string, string>;
    observed: GoldenGuestObserved;
}

export interface InputProblem {
    property: string;
    reason: string;
}

const HOSTNAME = /^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const TOKEN_ID = /^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+![A-Za-z][A-Za-z0-9._-]*$/;
const VOLID = /^[A-Za-z][A-Za-z0-9._-]*:[^\s]+$/;
const STORAGE = /^[A-Za-z][A-Za-z0-9._-]*$/;
const FINGERPRINT = /^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/;
export const MAX_MOUNT_POINTS = 256;
export const MAX_DISK_GIB = 131_072;

/** Problems with the inputs that are known; unknown ones (preview) are not judged. */
export function goldenGuestInputProblems(news: Partial<GoldenGuestInputs>, olds?: Partial<GoldenGuestInputs>): InputProblem[] {
    const problems: InputProblem[] = [];
    const rule = (property: keyof GoldenGuestInputs, ok: (v: any) => boolean, allowed: string) => {
        const value = news[property];
        if (isUnknown(value)) return;
        if (!ok(value)) problems.push({ property, reason: `got ${property === "tokenSecret" ? "[secret]" : JSON.stringify(value)}; allowed: ${allowed}` });
    };
    rule("endpoint", (v) => typeof v === "string" && /^https:\/\/[^/\s]+\/?$/.test(v), "an https URL with no path, such as https://pve.example.net:8006");
    rule("node", (v) => typeof v === "string" && /^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/.test(v), "a Proxmox VE node name such as pve");
    rule("tokenId", (v) => typeof v === "string" && TOKEN_ID.test(v), "USER@REALM!TOKENID, such as meshstack@pve!deploy");
    rule("tokenSecret", (v) => typeof v === "string" && /^[A-Za-z0-9-]{8,}$/.test(v), "the token's secret (a UUID)");
    rule("caBundlePem", (v) => v === "" || (typeof v === "string" && v.includes("-----BEGIN CERTIFICATE-----")), "\"\" or PEM certificates");
    rule("tlsFingerprint", (v) => v === "" || (typeof v === "string" && FINGERPRINT.test(v)), "\"\" or a SHA-256 fingerprint, 32 colon-separated hex pairs");
    rule("storage", (v) => typeof v === "string" && STORAGE.test(v), "a storage id such as local-lvm");
    rule("archive", (v) => typeof v === "string" && VOLID.test(v), "a backup volume id such as local:backup/vzdump-lxc-9000-2026_06_09-20_41_10.tar.zst");
    rule("allowUnpreparedArchive", (v) => typeof v === "boolean", "true or false");
    rule("vmid", (v) => Number.isInteger(v) && v >= 100 && v <= 999_999_999, "an integer from 100 to 999999999");
    rule("hostname", (v) => typeof v === "string" && HOSTNAME.test(v), "a lowercase DNS label of 1 to 63 letters, digits and -");
    rule("rootfsSizeGiB", (v) => Number.isInteger(v) && v >= 0 && v <= MAX_DISK_GIB, `an integer from 0 (keep the archive's) to ${MAX_DISK_GIB}`);
    rule("startOnBoot", (v) => typeof v === "boolean", "true or false");
    if (!isUnknown(news.mountPoints)) {
        const mps = news.mountPoints;
        if (!Array.isArray(mps) || mps.length > MAX_MOUNT_POINTS) {
            problems.push({ property: "mountPoints", reason: `got ${JSON.stringify(mps)}; allowed: a list of at most ${MAX_MOUNT_POINTS} mount points` });
        } else {
            mps.forEach((mp, i) => {
                if (typeof mp?.path !== "string" || !/^\/[^\s,=]*[^/\s,=]$/.test(mp.path) || mp.path.split("/").includes("..")) {
                    problems.push({ property: `mountPoints[${i}].path`, reason: `got ${JSON.stringify(mp?.path)}; allowed: an absolute path without spaces, commas or .., not /` });
                }
                if (!Number.isInteger(mp?.sizeGiB) || mp.sizeGiB < 1 || mp.sizeGiB > MAX_DISK_GIB) {
                    problems.push({ property: `mountPoints[${i}].sizeGiB`, reason: `got ${JSON.stringify(mp?.sizeGiB)}; allowed: an integer from 1 to ${MAX_DISK_GIB}` });
                }
                if (typeof mp?.storage !== "string" || !STORAGE.test(mp.storage)) {
                    problems.push({ property: `mountPoints[${i}].storage`, reason: `got ${JSON.stringify(mp?.storage)}; allowed: a storage id such as local-lvm` });
                }
            });
            const paths = mps.map((mp) => mp?.path);
            const repeated = paths.find((p, i) => paths.indexOf(p) !== i);
            if (repeated !== undefined) problems.push({ property: "mountPoints", reason: `path ${repeated} appears twice; allowed: each path once` });
        }
    }
    // Volumes only grow: a smaller size would have to shrink a filesystem.
    if (olds && !isUnknown(news.rootfsSizeGiB) && typeof olds.rootfsSizeGiB === "number" && typeof news.rootfsSizeGiB === "number" &&
        news.rootfsSizeGiB !== 0 && news.rootfsSizeGiB < olds.rootfsSizeGiB && news.archive === olds.archive && news.vmid === olds.vmid) {
        problems.push({ property: "rootfsSizeGiB", reason: `got ${news.rootfsSizeGiB}, down from ${olds.rootfsSizeGiB}; allowed: ${olds.rootfsSizeGiB} or more (Proxmox VE cannot shrink a volume)` });
    }
    for (const [i, mp] of (Array.isArray(news.mountPoints) && Array.isArray(olds?.mountPoints) ? news.mountPoints : []).entries()) {
        const old = olds!.mountPoints!.find((o) => o.path === mp?.path);
        if (old && Number.isInteger(mp.sizeGiB) && mp.sizeGiB < old.sizeGiB && news.vmid === olds!.vmid) {
            problems.push({ property: `mountPoints[${i}].sizeGiB`, reason: `got ${mp.sizeGiB}, down from ${old.sizeGiB}; allowed: ${old.sizeGiB} or more (Proxmox VE cannot shrink a volume)` });
        }
    }
    const policy = news.policy as Partial<GoldenGuestPolicy> | undefined;
    if (!isUnknown(policy)) {
        const positive = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v > 0;
        const retry = (policy?.retry ?? {}) as Partial<RetryPolicy>;
        const checks: [string, unknown, (v: any) => boolean, string][] = [
            ["policy.requestTimeoutMs", policy?.requestTimeoutMs, positive, "milliseconds > 0"],
            ["policy.retry.attempts", retry.attempts, (v) => Number.isInteger(v) && v >= 1 && v <= 20, "an integer from 1 to 20"],
            ["policy.retry.initialDelayMs", retry.initialDelayMs, positive, "milliseconds > 0"],
            ["policy.retry.multiplier", retry.multiplier, (v) => typeof v === "number" && v >= 1, "a number >= 1"],
            ["policy.retry.maxDelayMs", retry.maxDelayMs, positive, "milliseconds > 0"],
            ["policy.retry.jitter", retry.jitter, (v) => typeof v === "number" && v >= 0 && v < 1, "a number from 0 up to (not including) 1"],
            ["policy.taskPollIntervalMs", policy?.taskPollIntervalMs, positive, "milliseconds > 0"],
            ["policy.noSuchTaskGraceMs", policy?.noSuchTaskGraceMs, (v) => typeof v === "number" && v >= 0, "milliseconds >= 0"],
            ["policy.runningTimeoutMs", policy?.runningTimeoutMs, positive, "milliseconds > 0"],
            ["policy.ipv4TimeoutMs", policy?.ipv4TimeoutMs, (v) => typeof v === "number" && v >= 0, "milliseconds >= 0"],
            ...(["vzrestore", "resize", "vzstart", "vzstop", "vzdestroy"] as const).map(
                (type): [string, unknown, (v: any) => boolean, string] => [`policy.taskTimeoutMs.${type}`, policy?.taskTimeoutMs?.[type], positive, "milliseconds > 0"],
            ),
        ];
        for (const [property, value, ok, allowed] of checks) {
            if (!ok(value)) problems.push({ property, reason: `got ${JSON.stringify(value)}; allowed: ${allowed}` });
        }
    }
    return problems;
}

// ---------------------------------------------------------------------------
// The API client: one TLS connection per request, verified before a byte of
// the request (and its token) is sent.

/** How one guest's API calls reach Proxmox VE: the connection part of the inputs. */
type PveConnection = Pick<GoldenGuestInputs, "endpoint" | "node" | "tokenId" | "tokenSecret" | "caBundlePem" | "tlsFingerprint"> & { requestTimeoutMs: number };

interface PveReply {
    status: number;
    /** The reason phrase: where Proxmox VE puts its error message. */
    reason: string;
    data: any;
    /** The body's `errors`: per-parameter messages of a 400 "Parameter verification failed." */
    errors?: Record<string, string>;
}

interface Scope {
    conn: PveConnection;
    policy: GoldenGuestPolicy;
    vmid: number;
    hostname: string;
}

/** An error from one API call, with what the retry policy needs to judge it. */
interface PveFailure extends Error {
    pveStatus?: number;
    pveReason?: string;
    pveErrors?: Record<string, string>;
    transient: boolean;
}

function failure(message: string, fields: { status?: number; reason?: string; errors?: Record<string, string>; transient?: boolean } = {}): PveFailure {
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
const NO_WORKER = /got no worker upid/;

/** HTTP >= 500 with these words: a lock held a moment too long or a worker that did not start. */
const TRANSIENT_REASONS = [/got timeout/, NO_WORKER];

function isTransient(status: number, reason: string): boolean {
    return status >= 500 && TRANSIENT_REASONS.some((re) => re.test(reason));
}

function normalizedFingerprint(text: string): string {
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

async function pveRequest(conn: PveConnection, method: string, apiPath: string, params: Record<string, string | number> = {}): Promise<PveReply> {
    const deadline = Date.now() + conn.requestTimeoutMs;
    const socket = await connect(conn, deadline);
    const form = new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)])).toString();
    const withBody = method === "POST" || method === "PUT";
    const url = new URL(conn.endpoint);
    const fullPath = `/api2/json${apiPath}${!withBody && form ? `?${form}` : ""}`;
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
                let body: any = {};
                try {
                    body = text ? JSON.parse(text) : {};
                } catch {
                    body = {};
                }
                const reason = (res.statusMessage ?? "").trim() || String(body?.message ?? "").trim();
                const errors = body?.errors && typeof body.errors === "object" ? (body.errors as Record<string, string>) : undefined;
                resolve({ status: res.statusCode ?? 0, reason, data: body?.data, errors });
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

function describeCall(scope: Scope, operation: string, method: string, apiPath: string): string {
    return `GoldenGuest ${scope.hostname} (CT ${scope.vmid} on node ${scope.conn.node}): ${operation}: ${method} ${scope.conn.endpoint}/api2/json${apiPath}`;
}


function backoffMs(retry: RetryPolicy, attempt: number): number {
    const base = Math.min(retry.maxDelayMs, retry.initialDelayMs * retry.multiplier ** attempt);
    return Math.max(0, Math.round(base * (1 + retry.jitter * (2 * Math.random() - 1))));
}

function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One API call: transient failures retried within the policy's bound, anything else thrown at once. */
async function call(
    scope: Scope, operation: string, method: string, apiPath: string, params: Record<string, string | number> = {},
    options: { retryNoWorker?: boolean } = {},
): Promise<any> {
    const what = describeCall(scope, operation, method, apiPath);
    const retry = scope.policy.retry;
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
        let reply: PveReply;
        try {
            reply = await pveRequest(scope.conn, method, apiPath, params);
        } catch (err) {
            throw failure(`${what} failed: ${(err as Error).message}`);
        }
        if (reply.status >= 200 && reply.status < 300) return reply.data;
        const detail = `HTTP ${reply.status} ${reply.reason}${reply.errors ? ` (${Object.entries(reply.errors).map(([k, v]) => `${k}: ${String(v).trim()}`).join("; ")})` : ""}`;
        if (reply.status === 401) {
            throw failure(`${what} failed: ${detail}: authorization failed: the API token ${scope.conn.tokenId} or its secret is wrong, expired or deleted`, reply);
        }
        if (reply.status === 403) {
            throw failure(`${what} failed: ${detail}: the API token ${scope.conn.tokenId} lacks this privilege (give its role the privilege, or untick privilege separation)`, reply);
        }
        const transient = isTransient(reply.status, reply.reason) && (options.retryNoWorker !== false || !NO_WORKER.test(reply.reason));
        if (!transient) throw failure(`${what} failed: ${detail}`, reply);
        if (attempt >= retry.attempts) {
            throw failure(`${what} failed: ${detail}; still failing after ${attempt} attempts over ${formatSeconds(Date.now() - started)} (retry bound reached)`, {
                status: reply.status, reason: reply.reason, transient: true,
            });
        }
        const wait = backoffMs(retry, attempt - 1);
        console.log(`${what}: ${detail}; transient, attempt ${attempt} of ${retry.attempts}, retrying in ${formatSeconds(wait)}`);
        await sleep(wait);
    }
}

type TaskType = keyof GoldenGuestPolicy["taskTimeoutMs"];

/** Tail of a task's log, for errors. */
async function taskLogTail(scope: Scope, upid: string, lines = 20): Promise<string[]> {
    try {
        const log = (await call(scope, "read task log", "GET", `/nodes/${scope.conn.node}/tasks/${encodeURIComponent(upid)}/log`, { start: 0, limit: 5000 })) as { t: string }[];
        return log.slice(-lines).map((l) => l.t);
    } catch (err) {
        return [`(task log unavailable: ${(err as Error).message})`];
    }
}

/** Waits for one task with its own deadline; OK and WARNINGS: n are success, anything else an error with the log's tail. */
async function waitTask(scope: Scope, operation: string, type: TaskType, upid: unknown): Promise<void> {
    if (typeof upid !== "string" || !upid.startsWith("UPID:")) {
        throw failure(`GoldenGuest ${scope.hostname} (CT ${scope.vmid} on node ${scope.conn.node}): ${operation} returned ${JSON.stringify(upid)}, not a task id (UPID)`);
    }
    const dispatched = Date.now();
    const timeout = scope.policy.taskTimeoutMs[type];
    const statusPath = `/nodes/${scope.conn.node}/tasks/${encodeURIComponent(upid)}/status`;
    let lastProgress = dispatched;
    for (;;) {
        await sleep(Math.min(scope.policy.taskPollIntervalMs, Math.max(0, dispatched + timeout - Date.now())));
        let status: { status: string; exitstatus?: string } | undefined;
        try {
            status = await call(scope, `${operation} (task status)`, "GET", statusPath);
        } catch (err) {
            const f = err as PveFailure;
            // A task the node has just forked is not in its task list yet.
            const early = isUnknownTask(f.pveStatus, f.pveErrors) && Date.now() - dispatched < scope.policy.noSuchTaskGraceMs;
            if (!early) throw err;
        }
        const elapsed = Date.now() - dispatched;
        if (status?.status === "stopped") {
            const exit = status.exitstatus ?? "";
            if (exit === "OK") return;
            if (/^WARNINGS: \d+$/.test(exit)) {
                console.log(`GoldenGuest ${scope.hostname} (CT ${scope.vmid}): ${operation} ended with ${exit} (success); log tail:\n  ${(await taskLogTail(scope, upid, 10)).join("\n  ")}`);
                return;
            }
            const tail = await taskLogTail(scope, upid);
            throw failure(
                `GoldenGuest ${scope.hostname} (CT ${scope.vmid} on node ${scope.conn.node}): ${operation} failed: task ${upid} ended with exit status ` +
                    `${JSON.stringify(exit)} after ${formatSeconds(elapsed)}; last lines of its log:\n  ${tail.join("\n  ")}`,
            );
        }
        if (elapsed >= timeout) {
            throw failure(
                `GoldenGuest ${scope.hostname} (CT ${scope.vmid} on node ${scope.conn.node}): ${operation}: task ${upid} still ${status?.status ?? "unknown"} ` +
                    `after ${formatSeconds(elapsed)}, past its ${formatSeconds(timeout)} deadline. It may still be running on the node: read its log with ` +
                    `\`pvenode task log ${upid}\` or in the GUI under Tasks, then run \`pulumi up\` again (or \`pulumi refresh\`).`,
            );
        }
        if (Date.now() - lastProgress >= 10_000) {
            lastProgress = Date.now();
            console.log(`GoldenGuest ${scope.hostname} (CT ${scope.vmid}): ${operation}: task running for ${formatSeconds(elapsed)} (deadline ${formatSeconds(timeout)})`);
        }
    }
}

// ---------------------------------------------------------------------------
// Reading Proxmox VE config into what the provider compares.

function parseProperties(text: string, defaultKey: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const part of (text ?? "").split(",")) {
        const eq = part.indexOf("=");
        if (eq < 0) out[defaultKey] = part;
        else out[part.slice(0, eq)] = part.slice(eq + 1);
    }
    return out;
}

function sizeGiB(size: string | undefined): number {
    const m = /^(\d+(?:\.\d+)?)([KMGT]?)$/.exec(size ?? "");
    if (!m) return 0;
    const factor = { "": 1 / 1024 ** 3, K: 1 / 1024 ** 2, M: 1 / 1024, G: 1, T: 1024 }[m[2] as "" | "K" | "M" | "G" | "T"];
    return Number(m[1]) * factor;
}

function macsOf(config: Record<string, string>): Record<string, string> {
    const macs: Record<string, string> = {};
    for (const key of Object.keys(config).filter((k) => /^net\d+$/.test(k)).sort()) {
        macs[key] = (parseProperties(config[key], "name").hwaddr ?? "").toUpperCase();
    }
    return macs;
}

function mountPointsOf(config: Record<string, string>): Record<string, { path: string; sizeGiB: number }> {
    const mps: Record<string, { path: string; sizeGiB: number }> = {};
    for (const key of Object.keys(config).filter((k) => /^mp\d+$/.test(k))) {
        const mp = parseProperties(config[key], "volume");
        mps[key] = { path: mp.mp ?? "", sizeGiB: sizeGiB(mp.size) };
    }
    return mps;
}

/** extractconfig answers with the archived config file: `#` comment lines (the description) and `key: value` lines. */
export function parseArchivedConfig(text: string): { description: string; config: Record<string, string> } {
    const description: string[] = [];
    const config: Record<string, string> = {};
    for (const line of String(text ?? "").split("\n")) {
        if (line.startsWith("#")) {
            let decoded = line.slice(1);
            try {
                decoded = decodeURIComponent(decoded);
            } catch {
                // Not percent-encoded: keep as is.
            }
            description.push(decoded);
        } else if (/^\[/.test(line)) {
            break; // snapshot sections follow the current config
        } else if (line.includes(": ")) {
            config[line.slice(0, line.indexOf(": "))] = line.slice(line.indexOf(": ") + 2);
        }
    }
    return { description: description.join("\n"), config };
}

function connectionOf(inputs: GoldenGuestInputs): PveConnection {
    return {
        endpoint: inputs.endpoint.replace(/\/$/, ""), node: inputs.node, tokenId: inputs.tokenId, tokenSecret: inputs.tokenSecret,
        caBundlePem: inputs.caBundlePem, tlsFingerprint: inputs.tlsFingerprint, requestTimeoutMs: inputs.policy.requestTimeoutMs,
    };
}

function scopeOf(inputs: GoldenGuestInputs): Scope {
    return { conn: connectionOf(inputs), policy: inputs.policy, vmid: inputs.vmid, hostname: inputs.hostname };
}

function guestPath(scope: Scope, sub = ""): string {
    return `/nodes/${scope.conn.node}/lxc/${scope.vmid}${sub}`;
}

function isMissing(err: unknown): boolean {
    const f = err as PveFailure;
    return f.pveStatus === 500 && /does not exist/.test(f.pveReason ?? "");
}

/** The keys of GET .../config the provider reads as text: their schema type is `string`. */
const CONFIG_STRING_KEY = /^(digest|hostname|lock|rootfs|net\d+|mp\d+)$/;

/**
 * GET .../config read by the API schema's types: PVE's JSON carries a
 * `boolean` as the integer 0 or 1 and an `integer` as a number, never as
 * text. A value of another type is refused, naming the key, the value and
 * what the schema allows, instead of being read as a different setting.
 */
export function readLxcConfig(data: unknown): { strings: Record<string, string>; onboot: boolean } {
    const config = (data && typeof data === "object" ? data : {}) as Record<string, unknown>;
    const refuse = (key: string, allowed: string) =>
        new Error(`Proxmox VE answered the container config's ${key} with ${JSON.stringify(config[key])}; its API schema allows ${allowed}`);
    const strings: Record<string, string> = {};
    for (const [key, value] of Object.entries(config)) {
        if (!CONFIG_STRING_KEY.test(key)) continue;
        if (typeof value !== "string") throw refuse(key, "a string");
        strings[key] = value;
    }
    // onboot defaults to 0 when the config does not set it.
    if (config.onboot !== undefined && config.onboot !== 0 && config.onboot !== 1) throw refuse("onboot", "the integers 0 and 1 (a boolean)");
    return { strings, onboot: config.onboot === 1 };
}

async function observe(scope: Scope): Promise<GoldenGuestObserved & { digest: string; config: Record<string, string> }> {
    const reply = await call(scope, "read config", "GET", guestPath(scope, "/config"));
    let parsed: ReturnType<typeof readLxcConfig>;
    try {
        parsed = readLxcConfig(reply);
    } catch (err) {
        throw failure(`${describeCall(scope, "read config", "GET", guestPath(scope, "/config"))}: ${(err as Error).message}`);
    }
    const config = parsed.strings;
    const status = (await call(scope, "read status", "GET", guestPath(scope, "/status/current"))) as { status: string };
    const running = status.status === "running";
    let ipv4 = "";
    if (running) ipv4 = await reportedIpv4(scope);
    return {
        hostname: config.hostname ?? "",
        macs: macsOf(config),
        rootfsSizeGiB: sizeGiB(parseProperties(config.rootfs, "volume").size),
        mountPoints: mountPointsOf(config),
        startOnBoot: parsed.onboot,
        running,
        ipv4,
        digest: config.digest,
        config,
    };
}

/** The first non-loopback IPv4 the API reports; "" when none or when the API has no interfaces endpoint. */
async function reportedIpv4(scope: Scope): Promise<string> {
    let list: { name: string; inet?: string }[];
    try {
        list = await call(scope, "read interfaces", "GET", guestPath(scope, "/interfaces"));
    } catch (err) {
        const f = err as PveFailure;
        if (f.pveStatus === 501 || f.pveStatus === 400 || f.pveStatus === 500) return "";
        throw err;
    }
    const found = (list ?? []).find((i) => i.name !== "lo" && i.inet && !i.inet.startsWith("127."));
    return found?.inet?.split("/")[0] ?? "";
}

/** Refuses an archive that was not prepared (unless allowed) and returns the MACs it carries. */
async function inspectArchive(scope: Scope, inputs: GoldenGuestInputs): Promise<Record<string, string>> {
    const text = await call(scope, "read archive config (extractconfig)", "GET", `/nodes/${scope.conn.node}/vzdump/extractconfig`, { volume: inputs.archive });
    const archived = parseArchivedConfig(text);
    if (!archived.description.includes(GOLDEN_PREPARED_MARKER)) {
        const why =
            `archive ${inputs.archive} was not prepared as a golden image: its description lacks "${GOLDEN_PREPARED_MARKER}". ` +
            "A restore regenerates neither SSH host keys nor /etc/machine-id, so every guest restored from an uncleaned archive shares " +
            "the golden's host keys and machine-id, and one cleaned without a first-boot key unit boots with ssh.service failed. " +
            "Build the archive with meshstack's golden image (meshstack:proxmoxGoldenTemplate), or, if you cleaned it yourself, " +
            "set meshstack:proxmoxAllowUnpreparedArchive to true.";
        if (!inputs.allowUnpreparedArchive) throw failure(`GoldenGuest ${scope.hostname} (CT ${scope.vmid}): refusing to restore: ${why}`);
        console.log(`GoldenGuest ${scope.hostname} (CT ${scope.vmid}): restoring anyway (allowUnpreparedArchive): ${why}`);
    }
    return macsOf(archived.config);
}

/** Config writes go with the digest of the config just read, so a concurrent edit is a conflict, not a silent overwrite. */
async function writeConfig(scope: Scope, operation: string, params: Record<string, string | number>): Promise<void> {
    const { digest } = (await call(scope, `${operation} (read digest)`, "GET", guestPath(scope, "/config"))) as { digest: string };
    await call(scope, operation, "PUT", guestPath(scope, "/config"), { ...params, digest });
}

/** Gives every netN that kept an archived MAC (or shares one) a fresh one, then checks it took. */
async function ensureOwnMacs(scope: Scope, archiveMacs: Record<string, string>): Promise<void> {
    const archived = Object.values(archiveMacs).filter(Boolean);
    for (let round = 0; round < 2; round++) {
        const { config } = await observe(scope);
        const macs = macsOf(config);
        const stale = Object.entries(macs).filter(([, mac]) => !mac || archived.includes(mac)).map(([key]) => key);
        if (!stale.length) return;
        if (round === 1) {
            throw failure(
                `GoldenGuest ${scope.hostname} (CT ${scope.vmid} on node ${scope.conn.node}): ${stale.join(", ")} still carry the archive's MAC ` +
                    `(${stale.map((k) => macs[k]).join(", ")}) after a reset; two guests of one golden would collide on the LAN`,
            );
        }
        // A netN written without hwaddr gets a fresh random MAC.
        const reset = Object.fromEntries(stale.map((key) => [key, config[key].split(",").filter((p) => !p.startsWith("hwaddr=")).join(",")]));
        console.log(`GoldenGuest ${scope.hostname} (CT ${scope.vmid}): ${stale.join(", ")} kept the archive's MAC; resetting`);
        await writeConfig(scope, "reset MAC", reset);
    }
}

async function ensureHostname(scope: Scope): Promise<void> {
    const { hostname } = await observe(scope);
    if (hostname === scope.hostname) return;
    await writeConfig(scope, "set hostname", { hostname: scope.hostname });
    const after = await observe(scope);
    if (after.hostname !== scope.hostname) {
        throw failure(`GoldenGuest ${scope.hostname} (CT ${scope.vmid}): hostname is ${JSON.stringify(after.hostname)} after setting it`);
    }
}

async function ensureRootfsSize(scope: Scope, wantGiB: number): Promise<void> {
    if (wantGiB === 0) return;
    const { rootfsSizeGiB } = await observe(scope);
    if (rootfsSizeGiB >= wantGiB) return;
    const upid = await call(scope, `resize rootfs to ${wantGiB}G`, "PUT", guestPath(scope, "/resize"), { disk: "rootfs", size: `${wantGiB}G` });
    await waitTask(scope, `resize rootfs to ${wantGiB}G`, "resize", upid);
}

async function ensureMountPoints(scope: Scope, wanted: GoldenMountPoint[]): Promise<void> {
    for (const mp of wanted) {
        const { mountPoints } = await observe(scope);
        const present = Object.entries(mountPoints).find(([, m]) => m.path === mp.path);
        if (present) {
            if (present[1].sizeGiB < mp.sizeGiB) {
                const upid = await call(scope, `resize ${present[0]} (${mp.path}) to ${mp.sizeGiB}G`, "PUT", guestPath(scope, "/resize"), { disk: present[0], size: `${mp.sizeGiB}G` });
                await waitTask(scope, `resize ${present[0]} (${mp.path})`, "resize", upid);
            }
            continue;
        }
        let index = 0;
        while (mountPoints[`mp${index}`]) index++;
        await writeConfig(scope, `attach mp${index} at ${mp.path}`, { [`mp${index}`]: `${mp.storage}:${mp.sizeGiB},mp=${mp.path}` });
    }
}

async function ensureStartOnBoot(scope: Scope, want: boolean): Promise<void> {
    const { startOnBoot } = await observe(scope);
    if (startOnBoot !== want) await writeConfig(scope, `set onboot=${want ? 1 : 0}`, { onboot: want ? 1 : 0 });
}

async function ensureRunning(scope: Scope): Promise<GoldenGuestObserved> {
    const current = await observe(scope);
    if (!current.running) {
        const upid = await call(scope, "start", "POST", guestPath(scope, "/status/start"));
        await waitTask(scope, "start", "vzstart", upid);
    }
    const runningBy = Date.now() + scope.policy.runningTimeoutMs;
    for (;;) {
        const { status } = (await call(scope, "read status", "GET", guestPath(scope, "/status/current"))) as { status: string };
        if (status === "running") break;
        if (Date.now() >= runningBy) {
            throw failure(`GoldenGuest ${scope.hostname} (CT ${scope.vmid} on node ${scope.conn.node}): started, but status is ${status} after ${formatSeconds(scope.policy.runningTimeoutMs)}; see \`pct start ${scope.vmid} --debug\` on the node`);
        }
        await sleep(scope.policy.taskPollIntervalMs);
    }
    const ipv4By = Date.now() + scope.policy.ipv4TimeoutMs;
    for (;;) {
        const seen = await observe(scope);
        if (seen.ipv4 || Date.now() >= ipv4By) {
            if (!seen.ipv4) console.log(`GoldenGuest ${scope.hostname} (CT ${scope.vmid}): running; no IPv4 address reported within ${formatSeconds(scope.policy.ipv4TimeoutMs)}`);
            return strip(seen);
        }
        await sleep(scope.policy.taskPollIntervalMs);
    }
}

function strip(seen: GoldenGuestObserved & { digest?: string; config?: unknown }): GoldenGuestObserved {
    const { digest: _digest, config: _config, ...observed } = seen;
    return observed;
}

/** Brings an existing guest to the inputs, one call after another. */
async function converge(scope: Scope, inputs: GoldenGuestInputs, archiveMacs: Record<string, string>): Promise<GoldenGuestObserved> {
    await ensureOwnMacs(scope, archiveMacs);
    await ensureHostname(scope);
    await ensureRootfsSize(scope, inputs.rootfsSizeGiB);
    await ensureMountPoints(scope, inputs.mountPoints);
    await ensureStartOnBoot(scope, inputs.startOnBoot);
    return ensureRunning(scope);
}

/** Stops and destroys the guest; a guest already gone is success. */
async function destroyGuest(scope: Scope): Promise<void> {
    let status: { status: string };
    try {
        status = await call(scope, "read status", "GET", guestPath(scope, "/status/current"));
    } catch (err) {
        if (isMissing(err)) return;
        throw err;
    }
    if (status.status === "running") {
        const upid = await call(scope, "stop", "POST", guestPath(scope, "/status/stop"));
        await waitTask(scope, "stop", "vzstop", upid);
    }
    let upid: unknown;
    try {
        upid = await call(scope, "destroy", "DELETE", guestPath(scope), { purge: 1, "destroy-unreferenced-disks": 1 });
    } catch (err) {
        if (isMissing(err)) return;
        throw err;
    }
    await waitTask(scope, "destroy", "vzdestroy", upid);
}

/** Whether the CT's config holds nothing but `lock: create` (and its digest): what a restore leaves whose worker did not start. */
async function isLockedShell(scope: Scope): Promise<boolean> {
    let config: Record<string, unknown>;
    try {
        config = await call(scope, "read config", "GET", guestPath(scope, "/config"));
    } catch (err) {
        if (isMissing(err)) return false;
        throw err;
    }
    return config?.lock === "create" && Object.keys(config).filter((key) => key !== "digest").length === 1;
}

/**
 * The restore call. pve-container checks that the VMID is free and writes
 * the new CT's config, locked `create`, before it forks the restore worker;
 * when that fork fails ("got no worker upid") the worker never ran and the
 * locked config stays. A blind retry would meet "CT <id> already exists",
 * and the API cannot remove it: destroy, config writes and a forced restore
 * all refuse a locked CT, and only root on the node can unlock it. So after
 * that answer the config is read first: no config, retry; the locked shell,
 * fail saying how to remove it.
 */
async function restore(scope: Scope, inputs: GoldenGuestInputs): Promise<unknown> {
    const retry = scope.policy.retry;
    for (let attempt = 1; ; attempt++) {
        try {
            return await call(scope, "restore", "POST", `/nodes/${inputs.node}/lxc`, {
                vmid: inputs.vmid, ostemplate: inputs.archive, restore: 1, unique: 1, hostname: inputs.hostname, storage: inputs.storage,
            }, { retryNoWorker: false });
        } catch (err) {
            const f = err as PveFailure;
            if (!isTransient(f.pveStatus ?? 0, f.pveReason ?? "") || !NO_WORKER.test(f.pveReason ?? "")) throw err;
            if (await isLockedShell(scope)) {
                throw failure(
                    `${f.message}: Proxmox VE wrote CT ${inputs.vmid}'s config, locked (create), before the restore worker failed to start, so the ` +
                        `worker never ran and the config stays. The API refuses to remove a locked container; on node ${inputs.node}, as root, run ` +
                        `\`pct unlock ${inputs.vmid} && pct destroy ${inputs.vmid}\`, then \`pulumi up\` again.`,
                    { status: f.pveStatus, reason: f.pveReason },
                );
            }
            if (attempt >= retry.attempts) throw err;
            const wait = backoffMs(retry, attempt - 1);
            console.log(`${f.message}; nothing was written, attempt ${attempt} of ${retry.attempts}, retrying in ${formatSeconds(wait)}`);
            await sleep(wait);
        }
    }
}

async function createGuest(inputs: GoldenGuestInputs): Promise<GoldenGuestOutputs> {
    const scope = scopeOf(inputs);
    const archiveMacs = await inspectArchive(scope, inputs);
    console.log(`GoldenGuest ${inputs.hostname} (CT ${inputs.vmid}): restoring ${inputs.archive} to ${inputs.storage} on node ${inputs.node}`);
    const upid = await restore(scope, inputs);
    try {
        await waitTask(scope, "restore", "vzrestore", upid);
        const observed = await converge(scope, inputs, archiveMacs);
        console.log(`GoldenGuest ${inputs.hostname} (CT ${inputs.vmid}): running, MACs ${Object.values(observed.macs).join(", ")}${observed.ipv4 ? `, IPv4 ${observed.ipv4}` : ""}`);
        return { ...inputs, archiveMacs, observed };
    } catch (err) {
        // Nothing half-made stays behind: the next `up` restores afresh instead of meeting "already exists".
        try {
            await destroyGuest(scope);
        } catch (cleanup) {
            (err as Error).message += `\n(cleanup of the half-made CT ${inputs.vmid} failed too: ${(cleanup as Error).message}; remove it with \`pct destroy ${inputs.vmid}\`)`;
        }
        throw err;
    }
}

/** A new archive, VMID, node, endpoint or storage is another guest. */
const REPLACE_FIELDS = ["archive", "vmid", "node", "endpoint", "storage"] as const;
const IN_PLACE_FIELDS = ["hostname", "rootfsSizeGiB", "startOnBoot", "tokenId", "tokenSecret", "caBundlePem", "tlsFingerprint", "allowUnpreparedArchive"] as const;

/** What a read saw that the inputs do not want: the property, and what was seen against what is wanted. */
export function goldenGuestDrift(olds: GoldenGuestOutputs, news: GoldenGuestInputs): { property: string; detail: string }[] {
    const seen = olds.observed;
    if (!seen) return [];
    const drift: { property: string; detail: string }[] = [];
    if (!isUnknown(news.hostname) && seen.hostname !== news.hostname) {
        drift.push({ property: "hostname", detail: `hostname is ${JSON.stringify(seen.hostname)}, wanted ${JSON.stringify(news.hostname)}` });
    }
    if (!isUnknown(news.rootfsSizeGiB) && news.rootfsSizeGiB > seen.rootfsSizeGiB) {
        drift.push({ property: "rootfsSizeGiB", detail: `rootfs is ${seen.rootfsSizeGiB} GiB, wanted ${news.rootfsSizeGiB}` });
    }
    if (!isUnknown(news.startOnBoot) && seen.startOnBoot !== news.startOnBoot) {
        drift.push({ property: "startOnBoot", detail: `onboot is ${seen.startOnBoot ? 1 : 0}, wanted ${news.startOnBoot ? 1 : 0}` });
    }
    if (!seen.running) drift.push({ property: "observed.running", detail: "not running" });
    const archived = Object.values(olds.archiveMacs ?? {});
    const macs = Object.values(seen.macs);
    const shared = Object.entries(seen.macs).filter(([, mac]) => !mac || archived.includes(mac) || macs.indexOf(mac) !== macs.lastIndexOf(mac)).map(([key]) => key);
    if (shared.length) drift.push({ property: "observed.macs", detail: `${shared.join(", ")} without a MAC of its own (none, the archive's, or shared)` });
    const missing = isUnknown(news.mountPoints) ? [] : news.mountPoints.filter((mp) => !Object.values(seen.mountPoints).some((m) => m.path === mp.path && m.sizeGiB >= mp.sizeGiB));
    if (missing.length) drift.push({ property: "mountPoints", detail: `${missing.map((mp) => `${mp.path} (${mp.sizeGiB} GiB)`).join(", ")} missing or smaller` });
    return drift;
}

export function goldenGuestDiff(olds: GoldenGuestOutputs, news: GoldenGuestInputs): { changes: boolean; diffs: string[]; replaces: string[]; deleteBeforeReplace: boolean } {
    const differs = (a: unknown, b: unknown) => isUnknown(b) || JSON.stringify(a) !== JSON.stringify(b);
    const replaces: string[] = REPLACE_FIELDS.filter((f) => differs(olds[f], news[f]));
    // A removed or moved mount point would lose its volume's data: that is a new guest, shown as a replacement.
    if (isUnknown(news.mountPoints) || olds.mountPoints.some((old) => !news.mountPoints.some((mp) => mp.path === old.path && mp.storage === old.storage))) {
        replaces.push("mountPoints");
    }
    const changes = new Set<string>([...replaces, ...IN_PLACE_FIELDS.filter((f) => differs(olds[f], news[f]))]);
    if (!replaces.includes("mountPoints") && differs(olds.mountPoints, news.mountPoints)) changes.add("mountPoints");
    if (differs(olds.policy, news.policy)) changes.add("policy");
    // Drift seen by read: the guest no longer is what the inputs say.
    for (const { property } of goldenGuestDrift(olds, news)) changes.add(property);
    // deleteBeforeReplace: the replacement usually takes the same VMID.
    return { changes: changes.size > 0, diffs: [...changes], replaces, deleteBeforeReplace: true };
}

export const goldenGuestProvider: pulumi.dynamic.ResourceProvider = {
    async check(olds: GoldenGuestInputs, news: GoldenGuestInputs) {
        return { inputs: news, failures: goldenGuestInputProblems(news, olds && Object.keys(olds).length ? olds : undefined) };
    },

    async create(inputs: GoldenGuestInputs) {
        const outs = await createGuest(inputs);
        return { id: `${inputs.node}/${inputs.vmid}`, outs };
    },

    async read(id: string, props: GoldenGuestOutputs) {
        const scope = scopeOf(props);
        try {
            const seen = await observe(scope);
            return { id, props: { ...props, observed: strip(seen) } };
        } catch (err) {
            if (isMissing(err)) return { id: "", props: {} };
            throw err;
        }
    },

    async diff(_id: string, olds: GoldenGuestOutputs, news: GoldenGuestInputs) {
        // Drift changes no input, so the plan alone would show an update without saying why.
        const drift = goldenGuestDrift(olds, news);
        if (drift.length) console.log(`GoldenGuest ${olds.hostname} (CT ${olds.vmid}): drifted: ${drift.map((d) => `${d.property}: ${d.detail}`).join("; ")}`);
        return goldenGuestDiff(olds, news);
    },

    async update(_id: string, olds: GoldenGuestOutputs, news: GoldenGuestInputs) {
        const scope = scopeOf(news);
        const observed = await converge(scope, news, olds.archiveMacs);
        return { outs: { ...news, archiveMacs: olds.archiveMacs, observed } };
    },

    async delete(_id: string, props: GoldenGuestOutputs) {
        await destroyGuest(scopeOf(props));
    },
};

export interface GoldenGuestArgs {
    endpoint: pulumi.Input<string>;
    node: pulumi.Input<string>;
    tokenId: pulumi.Input<string>;
    /** The token's secret; made secret here whatever the caller passes. */
    tokenSecret: pulumi.Input<string>;
    caBundlePem?: pulumi.Input<string>;
    tlsFingerprint?: pulumi.Input<string>;
    storage: pulumi.Input<string>;
    archive: pulumi.Input<string>;
    allowUnpreparedArchive?: pulumi.Input<boolean>;
    vmid: pulumi.Input<number>;
    hostname: pulumi.Input<string>;
    rootfsSizeGiB?: pulumi.Input<number>;
    mountPoints?: pulumi.Input<GoldenMountPoint[]>;
    startOnBoot?: pulumi.Input<boolean>;
    policy?: pulumi.Input<GoldenGuestPolicy>;
}

export class GoldenGuest extends pulumi.dynamic.Resource {
    public readonly vmid!: pulumi.Output<number>;
    public readonly hostname!: pulumi.Output<string>;
    public readonly archiveMacs!: pulumi.Output<Record<string, string>>;
    public readonly observed!: pulumi.Output<GoldenGuestObserved>;

    constructor(name: string, args: GoldenGuestArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            goldenGuestProvider,
            name,
            {
                ...args,
                tokenSecret: pulumi.secret(args.tokenSecret),
                caBundlePem: args.caBundlePem ?? "",
                tlsFingerprint: args.tlsFingerprint ?? "",
                allowUnpreparedArchive: args.allowUnpreparedArchive ?? false,
                rootfsSizeGiB: args.rootfsSizeGiB ?? 0,
                mountPoints: args.mountPoints ?? [],
                startOnBoot: args.startOnBoot ?? false,
                policy: args.policy ?? DEFAULT_GOLDEN_GUEST_POLICY,
                archiveMacs: undefined,
                observed: undefined,
            },
            pulumi.mergeOptions(opts, { additionalSecretOutputs: ["tokenSecret"] }),
            "meshstack",
            "GoldenGuest",
        );
    }
}

