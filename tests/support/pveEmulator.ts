/**
 * A Proxmox VE API emulator: an HTTPS server speaking the slice of
 * /api2/json that restoring golden-image containers uses. No real Proxmox VE
 * can run on this machine, so it checks what the real server checks, as
 * pve-manager, pve-container and pve-common do:
 *
 * - `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`; a bad token gets
 *   401 after the server's 3 s delay (scaled), a missing privilege 403
 *   "Permission check failed (<path>, <privilege>)".
 * - Success is `{"data": ...}`; errors carry their message in the HTTP
 *   reason phrase and `{"data":null}` in the body; parameter errors (400
 *   "Parameter verification failed.") add `"errors": {param: message}`.
 * - Restore keeps the archived MAC and hostname unless the call overrides
 *   them; `unique=1` gives every netN a fresh MAC.
 * - Restore, resize, start, stop and destroy are tasks with real UPIDs and
 *   status/log endpoints; a new task is unknown for a moment (400, the
 *   words "no such task" in `errors.upid`).
 * - Config writes take the config lock: while a resize task holds it they
 *   wait (10 s, scaled) and fail with the exact 500
 *   `can't lock file '/run/lock/lxc/pve-config-<vmid>.lock' - got timeout`;
 *   a set `lock:` value refuses writes ("CT is locked (<lock>)"); a stale
 *   `digest` is a conflict.
 * - Faults on demand: HTTP errors for the next N matching calls (or all),
 *   failed tasks with a log, tasks ending in `WARNINGS: n`, workers that do
 *   not start ("got no worker upid", after what the call wrote first).
 *
 * Every duration is multiplied by `timeScale` so tests run in seconds.
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import { URL } from "url";

export const PVE_PRIVILEGES = [
    "VM.Allocate", "VM.Audit", "VM.Config.Disk", "VM.Config.Network", "VM.Config.Options", "VM.PowerMgmt", "VM.Backup",
    "Datastore.Audit", "Datastore.AllocateSpace",
] as const;
export type PvePrivilege = (typeof PVE_PRIVILEGES)[number];

export interface PveToken {
    /** USER@REALM!TOKENID */
    id: string;
    secret: string;
    privileges: readonly PvePrivilege[];
}

/** Durations of the real server, in milliseconds before scaling. */
export const PVE_TIMINGS = {
    /** pveproxy delays every failed authentication by 3 s. */
    authFailureDelayMs: 3000,
    /** lock_file waits 10 s for the config lock. */
    configLockWaitMs: 10_000,
    /** How long a just-dispatched task is unknown to tasks/{upid}/status. */
    taskInvisibleMs: 600,
    restoreMs: 4000,
    resizeMs: 3000,
    startMs: 2000,
    stopMs: 1000,
    destroyMs: 1000,
    /** After start, how long until the guest reports an IPv4 address. */
    dhcpMs: 1500,
};

export interface PveEmulatorOptions {
    node?: string;
    storages?: string[];
    tokens?: PveToken[];
    /** Multiplies every duration in PVE_TIMINGS. */
    timeScale?: number;
    /** Overrides single timings (before scaling). */
    timings?: Partial<typeof PVE_TIMINGS>;
}

export interface HttpFault {
    method?: string;
    /** Matched against the path below /api2/json. */
    path: RegExp;
    status: number;
    message: string;
    /** How many matching calls fail; Infinity for a permanent fault. */
    times: number;
}

export interface TaskFault {
    /** Task type: vzrestore, resize, vzstart, vzstop, vzdestroy. */
    type: string;
    /** "WARNINGS: n" keeps the task's effect; anything else is a failure that undoes nothing it did not do. */
    exitstatus: string;
    log: string[];
    times: number;
}

interface PveInterface {
    name: string;
    hwaddr: string;
    "hardware-address": string;
    "ip-addresses": { "ip-address": string; "ip-address-type": string; prefix: number }[];
    inet?: string;
    inet6?: string;
}

interface Task {
    upid: string;
    node: string;
    type: string;
    id: string;
    user: string;
    pid: number;
    pstart: number;
    starttime: number;
    visibleAt: number;
    status: "running" | "stopped";
    exitstatus?: string;
    log: string[];
}

interface Guest {
    vmid: number;
    /** Config keys in file order; `description` is kept apart as the file's comment lines. */
    config: Record<string, string>;
    running: boolean;
    /** Time until which a task holds the config lock file. */
    lockFileHeldUntil: number;
    diskCounter: number;
    /** When a started guest's DHCP lease arrives. */
    dhcpAt: number;
}

interface Archive {
    config: Record<string, string>;
}

export interface RecordedRequest {
    method: string;
    path: string;
    status: number;
    vmid?: number;
    at: number;
}

class ApiError extends Error {
    constructor(public readonly status: number, message: string, public readonly errors?: Record<string, string>) {
        super(message);
    }
}

const API_PREFIX = "/api2/json";

function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

function hex8(n: number): string {
    return n.toString(16).toUpperCase().padStart(8, "0");
}

/** The MAC prefix Proxmox VE gives generated addresses. */
function randomMac(): string {
    const bytes = crypto.randomBytes(3);
    return ["BC", "24", "11", ...[...bytes].map((b) => b.toString(16).toUpperCase().padStart(2, "0"))].join(":");
}

/** Proxmox's property strings: `key=value,key=value`, the first bare item being the default key. */
function parsePropertyString(text: string, defaultKey?: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const part of text.split(",")) {
        const eq = part.indexOf("=");
        if (eq < 0 && defaultKey) out[defaultKey] = part;
        else if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
    }
    return out;
}

function printPropertyString(props: Record<string, string>, defaultKey?: string): string {
    const parts = Object.entries(props).map(([k, v]) => (k === defaultKey ? v : `${k}=${v}`));
    if (defaultKey && props[defaultKey] !== undefined) {
        return [props[defaultKey], ...Object.entries(props).filter(([k]) => k !== defaultKey).map(([k, v]) => `${k}=${v}`)].join(",");
    }
    return parts.join(",");
}

/** Size strings as pve-common parses them ("8G", "512M", "1T"), in bytes. */
function parseSize(text: string): number | undefined {
    const m = /^(\d+(?:\.\d+)?)([KMGT]?)$/.exec(text);
    if (!m) return undefined;
    const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2] as "" | "K" | "M" | "G" | "T"];
    return Math.round(Number(m[1]) * unit);
}

function formatSize(bytes: number): string {
    for (const [unit, factor] of [["T", 1024 ** 4], ["G", 1024 ** 3], ["M", 1024 ** 2], ["K", 1024]] as const) {
        if (bytes % factor === 0) return `${bytes / factor}${unit}`;
    }
    return String(bytes);
}

/**
 * Config keys whose API schema type is not `string`: pve-container parses
 * the config file by its schema, so GET .../config answers these as JSON
 * numbers (a `boolean` as the integer 0 or 1), never as text.
 */
const CONFIG_BOOLEANS = new Set(["console", "debug", "onboot", "protection", "template", "unprivileged"]);
const CONFIG_INTEGERS = new Set(["cores", "cpuunits", "memory", "swap", "tty"]);
const CONFIG_NUMBERS = new Set(["cpulimit"]);

/** The config as GET .../config answers it: file text values typed by the schema. */
function typedConfig(config: Record<string, string>): Record<string, string | number> {
    const typed: Record<string, string | number> = {};
    for (const [key, value] of Object.entries(config)) {
        if (CONFIG_BOOLEANS.has(key)) typed[key] = /^(1|true|yes|on)$/i.test(value) ? 1 : 0;
        else if (CONFIG_INTEGERS.has(key)) typed[key] = parseInt(value, 10);
        else if (CONFIG_NUMBERS.has(key)) typed[key] = Number(value);
        else typed[key] = value;
    }
    return typed;
}

/** The config file's text, as extractconfig and the digest see it. */
function configText(config: Record<string, string>): string {
    const description = config.description
        ? config.description.split("\n").map((line) => `#${encodeURIComponent(line).replace(/%20/g, " ")}\n`).join("")
        : "";
    const body = Object.entries(config).filter(([k]) => k !== "description").map(([k, v]) => `${k}: ${v}\n`).join("");
    return description + body;
}

export class PveEmulator {
    public readonly node: string;
    public readonly storages: string[];
    public readonly tokens: PveToken[];
    /** Every request answered, in order. */
    public readonly requests: RecordedRequest[] = [];
    /** Called with every reply sent, as the client receives it (the emulator's tests check each against the published schema). */
    public onReply?: (reply: { method: string; path: string; status: number; reason: string; body: unknown }) => void;
    /** Highest number of requests in flight at once for one VMID. */
    public maxConcurrentPerGuest = 0;
    public url = "";
    public caPem = "";
    /** SHA-256 fingerprint of the server certificate, colon-separated, as the Proxmox GUI shows it. */
    public fingerprint = "";

    private readonly timings: typeof PVE_TIMINGS;
    private readonly guests = new Map<number, Guest>();
    private readonly archives = new Map<string, Archive>();
    private readonly tasks = new Map<string, Task>();
    private readonly httpFaults: HttpFault[] = [];
    private readonly taskFaults: TaskFault[] = [];
    private readonly forkFaults: { type: string; times: number }[] = [];
    private readonly inFlight = new Map<number, number>();
    private readonly timers = new Set<NodeJS.Timeout>();
    private server?: https.Server;
    private tempDir = "";
    private pidCounter = 0x1000;

    constructor(options: PveEmulatorOptions = {}) {
        this.node = options.node ?? "pve";
        this.storages = options.storages ?? ["local", "local-lvm"];
        this.tokens = options.tokens ?? [];
        const scale = options.timeScale ?? 1;
        const base = { ...PVE_TIMINGS, ...options.timings };
        this.timings = Object.fromEntries(Object.entries(base).map(([k, v]) => [k, v * scale])) as typeof PVE_TIMINGS;
    }

    /** Starts the server on a loopback port with a fresh self-signed certificate. */
    async start(): Promise<this> {
        this.tempDir = fs.mkdtempSync(path.join(os.tmpdir(), "pve-emulator-"));
        const key = path.join(this.tempDir, "key.pem");
        const cert = path.join(this.tempDir, "cert.pem");
        execFileSync("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=pve-emulator", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert,
        ], { stdio: "ignore" });
        this.caPem = fs.readFileSync(cert, "utf8");
        this.fingerprint = new crypto.X509Certificate(this.caPem).fingerprint256;
        this.server = https.createServer({ key: fs.readFileSync(key), cert: this.caPem }, (req, res) => void this.handle(req, res));
        await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
        this.url = `https://127.0.0.1:${(this.server.address() as { port: number }).port}`;
        return this;
    }

    async stop(): Promise<void> {
        for (const timer of this.timers) clearTimeout(timer);
        this.server?.closeAllConnections();
        await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
        fs.rmSync(this.tempDir, { recursive: true, force: true });
    }

    /** Puts an archive on backup storage, with the config vzdump would have stored in it. */
    addArchive(volid: string, config: Record<string, string>): void {
        this.archives.set(volid, { config: { ...config } });
    }

    /** The live config of a container, or undefined. */
    guestConfig(vmid: number): Record<string, string> | undefined {
        const guest = this.guests.get(vmid);
        return guest ? { ...guest.config } : undefined;
    }

    guestRunning(vmid: number): boolean {
        return this.guests.get(vmid)?.running ?? false;
    }

    failRequests(fault: HttpFault): void {
        this.httpFaults.push({ ...fault });
    }

    failTasks(fault: TaskFault): void {
        this.taskFaults.push({ ...fault, log: [...fault.log] });
    }

    /**
     * The next `times` tasks of a type fail to start: 500 "got no worker
     * upid - start worker failed", after what the call did before forking
     * stays done (a restore's config, locked `create`), as fork_worker fails.
     */
    failForks(fault: { type: string; times: number }): void {
        this.forkFaults.push({ ...fault });
    }

    clearFaults(): void {
        this.httpFaults.length = 0;
        this.taskFaults.length = 0;
        this.forkFaults.length = 0;
    }

    taskList(): { upid: string; type: string; exitstatus?: string }[] {
        return [...this.tasks.values()].map((t) => ({ upid: t.upid, type: t.type, exitstatus: t.exitstatus }));
    }

    private later(ms: number, fn: () => void): void {
        const timer = setTimeout(() => {
            this.timers.delete(timer);
            fn();
        }, ms);
        this.timers.add(timer);
    }

    private async handle(req: import("http").IncomingMessage, res: import("http").ServerResponse): Promise<void> {
        const url = new URL(req.url ?? "/", "https://emulator");
        const apiPath = url.pathname.startsWith(API_PREFIX) ? url.pathname.slice(API_PREFIX.length) : url.pathname;
        const method = req.method ?? "GET";
        const vmidMatch = /^\/nodes\/[^/]+\/lxc\/(\d+)/.exec(apiPath);
        let vmid = vmidMatch ? Number(vmidMatch[1]) : undefined;
        const body = await new Promise<string>((resolve) => {
            let text = "";
            req.on("data", (chunk) => (text += chunk));
            req.on("end", () => resolve(text));
        });
        const params: Record<string, string> = Object.fromEntries(url.searchParams);
        if (body) {
            const type = req.headers["content-type"] ?? "";
            if (type.includes("application/json")) Object.assign(params, JSON.parse(body));
            else Object.assign(params, Object.fromEntries(new URLSearchParams(body)));
        }
        if (vmid === undefined && params.vmid && /^\d+$/.test(params.vmid)) vmid = Number(params.vmid);
        const taskOf = /\/tasks\/UPID:[^:]+:[^:]+:[^:]+:[^:]+:[^:]+:(\d+):/.exec(decodeURIComponent(apiPath));
        if (vmid === undefined && taskOf) vmid = Number(taskOf[1]);
        if (vmid !== undefined) {
            const now = (this.inFlight.get(vmid) ?? 0) + 1;
            this.inFlight.set(vmid, now);
            this.maxConcurrentPerGuest = Math.max(this.maxConcurrentPerGuest, now);
        }
        let status = 200;
        let payload: unknown;
        try {
            const token = await this.authenticate(req.headers.authorization);
            const fault = this.httpFaults.find((f) => f.times > 0 && (!f.method || f.method === method) && f.path.test(apiPath));
            if (fault) {
                fault.times--;
                throw new ApiError(fault.status, fault.message);
            }
            payload = await this.route(method, apiPath, params, token);
        } catch (err) {
            const error = err instanceof ApiError ? err : new ApiError(500, String((err as Error).message ?? err));
            status = error.status;
            payload = undefined;
            // The json formatter (prepare_response_data) sends only data and, for parameter errors, errors.
            const bodyJson: Record<string, unknown> = { data: null };
            if (error.errors) bodyJson.errors = error.errors;
            this.requests.push({ method, path: decodeURIComponent(apiPath), status, vmid, at: Date.now() });
            if (vmid !== undefined) this.inFlight.set(vmid, (this.inFlight.get(vmid) ?? 1) - 1);
            // The reason phrase carries the message, one line, as pveproxy sends it.
            this.reply(res, method, apiPath, status, error.message.replace(/[\r\n]+/g, " "), bodyJson);
            return;
        }
        this.requests.push({ method, path: decodeURIComponent(apiPath), status, vmid, at: Date.now() });
        if (vmid !== undefined) this.inFlight.set(vmid, (this.inFlight.get(vmid) ?? 1) - 1);
        this.reply(res, method, apiPath, 200, "OK", { data: payload ?? null });
    }

    private reply(res: import("http").ServerResponse, method: string, apiPath: string, status: number, reason: string, body: unknown): void {
        const text = JSON.stringify(body);
        this.onReply?.({ method, path: decodeURIComponent(apiPath), status, reason, body: JSON.parse(text) });
        res.writeHead(status, reason, { "Content-Type": "application/json;charset=UTF-8" });
        res.end(text);
    }

    private async authenticate(header: string | undefined): Promise<PveToken> {
        const fail = async (message: string): Promise<never> => {
            await sleep(this.timings.authFailureDelayMs);
            throw new ApiError(401, message);
        };
        const m = /^PVEAPIToken=([^!=\s]+@[^!=\s]+)!([^=\s]+)=(\S+)$/.exec(header ?? "");
        if (!m) return fail("No ticket");
        const [, user, tokenName, secret] = m;
        const token = this.tokens.find((t) => t.id === `${user}!${tokenName}`);
        if (!token) return fail(`no such token '${tokenName}' for user '${user}'`);
        const a = Buffer.from(token.secret);
        const b = Buffer.from(secret);
        if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) return fail("invalid token value!");
        return token;
    }

    private require(token: PveToken, aclPath: string, ...privileges: PvePrivilege[]): void {
        for (const privilege of privileges) {
            if (!token.privileges.includes(privilege)) throw new ApiError(403, `Permission check failed (${aclPath}, ${privilege})`);
        }
    }

    private guest(vmid: number): Guest {
        const guest = this.guests.get(vmid);
        if (!guest) throw new ApiError(500, `Configuration file 'nodes/${this.node}/lxc/${vmid}.conf' does not exist`);
        return guest;
    }

    private digest(guest: Guest): string {
        return crypto.createHash("sha1").update(configText(guest.config)).digest("hex");
    }

    private async route(method: string, apiPath: string, params: Record<string, string>, token: PveToken): Promise<unknown> {
        if (method === "GET" && apiPath === "/version") return { version: "9.0.3", release: "9.0", repoid: "025864202ebb6109" };
        const nodeMatch = /^\/nodes\/([^/]+)(\/.*)?$/.exec(apiPath);
        if (!nodeMatch) throw new ApiError(501, `Method '${method} ${apiPath}' not implemented`);
        if (nodeMatch[1] !== this.node) {
            throw new ApiError(500, `hostname lookup '${nodeMatch[1]}' failed - failed to get address info for: ${nodeMatch[1]}: Name or service not known`);
        }
        const rest = nodeMatch[2] ?? "";
        let m: RegExpExecArray | null;
        if (method === "GET" && rest === "/vzdump/extractconfig") return this.extractConfig(params, token);
        if (method === "POST" && rest === "/lxc") return this.createOrRestore(params, token);
        if ((m = /^\/tasks\/([^/]+)\/(status|log)$/.exec(rest)) && method === "GET") return this.taskEndpoint(decodeURIComponent(m[1]), m[2], params);
        if (!(m = /^\/lxc\/(\d+)(\/.*)?$/.exec(rest))) throw new ApiError(501, `Method '${method} ${apiPath}' not implemented`);
        const vmid = Number(m[1]);
        const sub = m[2] ?? "";
        const acl = `/vms/${vmid}`;
        switch (`${method} ${sub}`) {
            case "GET /config": {
                this.require(token, acl, "VM.Audit");
                const guest = this.guest(vmid);
                return { ...typedConfig(guest.config), digest: this.digest(guest) };
            }
            case "PUT /config":
                return this.updateConfig(vmid, params, token);
            case "PUT /resize":
                return this.resize(vmid, params, token);
            case "GET /status/current": {
                this.require(token, acl, "VM.Audit");
                const guest = this.guest(vmid);
                // ha is always there (managed 0 for a CT outside HA); type is not part of this reply.
                return {
                    vmid, status: guest.running ? "running" : "stopped", ha: { managed: 0 },
                    ...(guest.config.hostname ? { name: guest.config.hostname } : {}), ...(guest.config.lock ? { lock: guest.config.lock } : {}),
                };
            }
            case "GET /interfaces": {
                this.require(token, acl, "VM.Audit");
                const guest = this.guest(vmid);
                if (!guest.running) throw new ApiError(500, `CT ${vmid} not running`);
                return this.interfaces(guest);
            }
            case "POST /status/start":
                return this.start_(vmid, token);
            case "POST /status/stop":
                return this.stop_(vmid, token);
            case "DELETE ":
                return this.destroy(vmid, token);
            default:
                throw new ApiError(501, `Method '${method} ${apiPath}' not implemented`);
        }
    }

    private extractConfig(params: Record<string, string>, token: PveToken): string {
        const volume = params.volume;
        if (!volume) throw new ApiError(400, "Parameter verification failed.", { volume: "property is missing and it is not optional" });
        this.require(token, `/storage/${volume.split(":")[0]}`, "Datastore.Audit");
        const archive = this.archives.get(volume);
        if (!archive) throw new ApiError(500, `volume '${volume}' does not exist`);
        return configText(archive.config);
    }

    private createOrRestore(params: Record<string, string>, token: PveToken): string {
        const errors: Record<string, string> = {};
        if (!/^\d+$/.test(params.vmid ?? "") || Number(params.vmid) < 100 || Number(params.vmid) > 999_999_999) {
            errors.vmid = params.vmid === undefined ? "property is missing and it is not optional" : "value must have a minimum value of 100";
        }
        if (!params.ostemplate) errors.ostemplate = "property is missing and it is not optional";
        if (params.hostname !== undefined && !/^(?=.{1,255}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/.test(params.hostname)) {
            errors.hostname = "value does not match the regex pattern";
        }
        for (const flag of ["restore", "unique", "force", "start"]) {
            if (params[flag] !== undefined && !/^[01]$/.test(params[flag])) errors[flag] = "type check ('boolean') failed - got '" + params[flag] + "'";
        }
        if (Object.keys(errors).length) throw new ApiError(400, "Parameter verification failed.", errors);
        const vmid = Number(params.vmid);
        this.require(token, `/vms/${vmid}`, "VM.Allocate");
        const storage = params.storage ?? "local";
        if (!this.storages.includes(storage)) throw new ApiError(500, `storage '${storage}' does not exist`);
        this.require(token, `/storage/${storage}`, "Datastore.AllocateSpace");
        if (params.restore !== "1") throw new ApiError(501, "the emulator only restores archives (restore=1)");
        if (this.guests.has(vmid)) throw new ApiError(500, `CT ${vmid} already exists on node '${this.node}'`);
        const archive = this.archives.get(params.ostemplate);
        if (!archive) throw new ApiError(500, `volume '${params.ostemplate}' does not exist`);

        // The config file exists at once, locked for the whole restore.
        const guest: Guest = { vmid, config: { lock: "create" }, running: false, lockFileHeldUntil: 0, diskCounter: 0, dhcpAt: 0 };
        this.guests.set(vmid, guest);
        const restored: Record<string, string> = { ...archive.config };
        for (const [k, v] of Object.entries(params)) {
            if (/^(net\d+|mp\d+|hostname|description|onboot|memory|cores|swap)$/.test(k)) restored[k] = v;
        }
        for (const key of Object.keys(restored).filter((k) => /^net\d+$/.test(k))) {
            const net = parsePropertyString(restored[key]);
            if (params.unique === "1" || !net.hwaddr) net.hwaddr = randomMac();
            restored[key] = printPropertyString(net);
        }
        const archivedRoot = parsePropertyString(archive.config.rootfs ?? "size=8G", "volume");
        restored.rootfs = printPropertyString({ volume: `${storage}:vm-${vmid}-disk-${guest.diskCounter++}`, size: archivedRoot.size ?? "8G" }, "volume");
        return this.dispatch("vzrestore", vmid, token, this.timings.restoreMs, [
            `restoring '${params.ostemplate}' now..`, "extracting archive", "Total bytes read: 312156160 (298MiB, 95MiB/s)",
            ...(params.unique === "1" ? ["assigning unique random ethernet addresses"] : []),
        ], () => {
            guest.config = restored;
        }, () => {
            this.guests.delete(vmid);
        });
    }

    private async withConfigLock<T>(guest: Guest, fn: () => T): Promise<T> {
        const waitUntil = Date.now() + this.timings.configLockWaitMs;
        while (guest.lockFileHeldUntil > Date.now()) {
            if (Date.now() >= waitUntil) {
                throw new ApiError(500, `can't lock file '/run/lock/lxc/pve-config-${guest.vmid}.lock' - got timeout`);
            }
            await sleep(Math.min(50, waitUntil - Date.now() + 1));
        }
        return fn();
    }

    private async updateConfig(vmid: number, params: Record<string, string>, token: PveToken): Promise<null> {
        const acl = `/vms/${vmid}`;
        const keys = Object.keys(params).filter((k) => k !== "digest" && k !== "delete");
        const deletes = (params.delete ?? "").split(/[,;\s]+/).filter(Boolean);
        const errors: Record<string, string> = {};
        for (const key of [...keys, ...deletes]) {
            if (!/^(hostname|description|onboot|memory|cores|swap|net\d+|mp\d+|rootfs)$/.test(key)) errors[key] = "property is not defined in schema and the schema does not allow additional properties";
        }
        if (params.hostname !== undefined && !/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,253}[a-zA-Z0-9])?$/.test(params.hostname)) errors.hostname = "value does not match the regex pattern";
        if (params.onboot !== undefined && !/^[01]$/.test(params.onboot)) errors.onboot = `type check ('boolean') failed - got '${params.onboot}'`;
        if (Object.keys(errors).length) throw new ApiError(400, "Parameter verification failed.", errors);
        for (const key of [...keys, ...deletes]) {
            if (/^(mp\d+|rootfs)$/.test(key)) this.require(token, acl, "VM.Config.Disk");
            else if (/^net\d+$/.test(key)) this.require(token, acl, "VM.Config.Network");
            else this.require(token, acl, "VM.Config.Options");
        }
        const guest = this.guest(vmid);
        return this.withConfigLock(guest, () => {
            if (params.digest !== undefined && params.digest !== this.digest(guest)) {
                throw new ApiError(500, "detected modified configuration - file changed by other user? Try again.");
            }
            if (guest.config.lock) throw new ApiError(500, `CT is locked (${guest.config.lock})`);
            for (const key of keys) {
                if (/^mp\d+$/.test(key)) {
                    if (guest.config[key]) throw new ApiError(500, `unable to modify mount point ${key}: already in use, delete it first`);
                    const mp = parsePropertyString(params[key], "volume");
                    const m = /^([a-zA-Z0-9_.-]+):(\d+)$/.exec(mp.volume ?? "");
                    if (!m) throw new ApiError(400, "Parameter verification failed.", { [key]: "invalid format - expected <storage>:<size in GiB>" });
                    if (!this.storages.includes(m[1])) throw new ApiError(500, `storage '${m[1]}' does not exist`);
                    this.require(token, `/storage/${m[1]}`, "Datastore.AllocateSpace");
                    if (!mp.mp?.startsWith("/")) throw new ApiError(400, "Parameter verification failed.", { [key]: "mp: missing or not an absolute path" });
                    const { volume: _volume, ...rest } = mp;
                    guest.config[key] = printPropertyString({ volume: `${m[1]}:vm-${vmid}-disk-${guest.diskCounter++}`, ...rest, size: `${m[2]}G` }, "volume");
                } else if (/^net\d+$/.test(key)) {
                    const net = parsePropertyString(params[key]);
                    net.hwaddr ??= randomMac();
                    guest.config[key] = printPropertyString(net);
                } else {
                    guest.config[key] = params[key];
                }
            }
            for (const key of deletes) delete guest.config[key];
            return null;
        });
    }

    private async resize(vmid: number, params: Record<string, string>, token: PveToken): Promise<string> {
        const errors: Record<string, string> = {};
        if (!/^(rootfs|mp\d+)$/.test(params.disk ?? "")) errors.disk = "value 'rootfs' or 'mpN' required";
        const m = /^(\+?)(\d+(?:\.\d+)?[KMGT]?)$/.exec(params.size ?? "");
        if (!m) errors.size = "value does not match the regex pattern";
        if (Object.keys(errors).length) throw new ApiError(400, "Parameter verification failed.", errors);
        this.require(token, `/vms/${vmid}`, "VM.Config.Disk");
        const guest = this.guest(vmid);
        return this.withConfigLock(guest, () => {
            if (params.digest !== undefined && params.digest !== this.digest(guest)) {
                throw new ApiError(500, "detected modified configuration - file changed by other user? Try again.");
            }
            if (guest.config.lock) throw new ApiError(500, `CT is locked (${guest.config.lock})`);
            const current = guest.config[params.disk];
            if (!current) throw new ApiError(500, `disk '${params.disk}' does not exist`);
            const disk = parsePropertyString(current, "volume");
            const currentBytes = parseSize(disk.size ?? "0") ?? 0;
            const requested = parseSize(m![2])!;
            const newBytes = m![1] === "+" ? currentBytes + requested : requested;
            if (newBytes < currentBytes) throw new ApiError(500, "unable to shrink disk size");
            if (newBytes === currentBytes) throw new ApiError(500, "disk is already at specified size");
            // The task resizes the volume, then the filesystem, holding the config lock throughout (once it has started).
            const upid = this.dispatch("resize", vmid, token, this.timings.resizeMs, [
                `  Size of logical volume pve/${disk.volume.split(":")[1]} changed from ${formatSize(currentBytes)} to ${formatSize(newBytes)}.`,
                "resize2fs 1.47.0 (5-Feb-2023)", `The filesystem is now ${newBytes / 4096} (4k) blocks long.`,
            ], () => {
                disk.size = formatSize(newBytes);
                guest.config[params.disk] = printPropertyString(disk, "volume");
            });
            guest.lockFileHeldUntil = Date.now() + this.timings.resizeMs;
            return upid;
        });
    }

    /** Each interface with the fields the schema requires (hwaddr and hardware-address, ip-addresses) and inet/inet6 where set. */
    private interfaces(guest: Guest): PveInterface[] {
        const entry = (name: string, hwaddr: string, inet?: string, inet6?: string): PveInterface => {
            const addresses = [...(inet ? [[inet, "inet"]] : []), ...(inet6 ? [[inet6, "inet6"]] : [])].map(([cidr, family]) => {
                const [address, prefix] = cidr.split("/");
                return { "ip-address": address, "ip-address-type": family, prefix: Number(prefix) };
            });
            return { name, hwaddr, "hardware-address": hwaddr, "ip-addresses": addresses, ...(inet ? { inet } : {}), ...(inet6 ? { inet6 } : {}) };
        };
        const list = [entry("lo", "00:00:00:00:00:00", "127.0.0.1/8", "::1/128")];
        const leased = Date.now() >= guest.dhcpAt;
        for (const key of Object.keys(guest.config).filter((k) => /^net\d+$/.test(k)).sort()) {
            const net = parsePropertyString(guest.config[key]);
            const octets = net.hwaddr.split(":").slice(4).map((h) => parseInt(h, 16));
            list.push(entry(net.name ?? key.replace("net", "eth"), net.hwaddr.toLowerCase(), leased ? `10.77.${octets[0]}.${octets[1] || 1}/24` : undefined));
        }
        return list;
    }

    private start_(vmid: number, token: PveToken): string {
        this.require(token, `/vms/${vmid}`, "VM.PowerMgmt");
        const guest = this.guest(vmid);
        if (guest.config.lock) throw new ApiError(500, `CT is locked (${guest.config.lock})`);
        if (guest.running) throw new ApiError(500, `CT ${vmid} already running`);
        return this.dispatch("vzstart", vmid, token, this.timings.startMs, [`starting CT ${vmid}`], () => {
            guest.running = true;
            guest.dhcpAt = Date.now() + this.timings.dhcpMs;
        });
    }

    private stop_(vmid: number, token: PveToken): string {
        this.require(token, `/vms/${vmid}`, "VM.PowerMgmt");
        const guest = this.guest(vmid);
        if (!guest.running) throw new ApiError(500, `CT ${vmid} not running`);
        return this.dispatch("vzstop", vmid, token, this.timings.stopMs, [`stopping CT ${vmid}`], () => {
            guest.running = false;
        });
    }

    private destroy(vmid: number, token: PveToken): string {
        this.require(token, `/vms/${vmid}`, "VM.Allocate");
        const guest = this.guest(vmid);
        if (guest.running) throw new ApiError(500, `CT ${vmid} is running - destroy failed`);
        if (guest.config.lock) throw new ApiError(500, `CT is locked (${guest.config.lock})`);
        return this.dispatch("vzdestroy", vmid, token, this.timings.destroyMs, [`destroying CT ${vmid}`], () => {
            this.guests.delete(vmid);
        });
    }

    /**
     * Starts a task: a UPID as pve-common's fork_worker writes it, a log, and
     * its effect applied when it ends (unless a fault makes it fail).
     */
    private dispatch(type: string, vmid: number, token: PveToken, durationMs: number, log: string[], effect: () => void, undo?: () => void): string {
        const forkFault = this.forkFaults.find((f) => f.times > 0 && f.type === type);
        if (forkFault) {
            forkFault.times--;
            throw new ApiError(500, "got no worker upid - start worker failed");
        }
        const pid = this.pidCounter++;
        const now = Date.now();
        const starttime = Math.floor(now / 1000);
        const pstart = Math.floor(process.uptime() * 100) + pid;
        const upid = `UPID:${this.node}:${hex8(pid)}:${hex8(pstart)}:${hex8(starttime)}:${type}:${vmid}:${token.id}:`;
        const task: Task = { upid, node: this.node, type, id: String(vmid), user: token.id, pid, pstart, starttime, visibleAt: now + this.timings.taskInvisibleMs, status: "running", log: [...log] };
        this.tasks.set(upid, task);
        const fault = this.taskFaults.find((f) => f.times > 0 && f.type === type);
        if (fault) fault.times--;
        this.later(durationMs, () => {
            const guest = this.guests.get(vmid);
            if (fault && !fault.exitstatus.startsWith("WARNINGS: ")) {
                task.log.push(...fault.log, `TASK ERROR: ${fault.exitstatus}`);
                task.exitstatus = fault.exitstatus;
                undo?.();
            } else {
                effect();
                if (guest && type === "vzrestore") delete guest.config.lock;
                if (fault) task.log.push(...fault.log, `TASK ${fault.exitstatus}`);
                else task.log.push("TASK OK");
                task.exitstatus = fault ? fault.exitstatus : "OK";
            }
            task.status = "stopped";
        });
        return upid;
    }

    private taskEndpoint(upid: string, what: string, params: Record<string, string>): unknown {
        const task = this.tasks.get(upid);
        if (!/^UPID:[^:]+:[0-9A-F]{8}:[0-9A-F]{8,}:[0-9A-F]{8}:[^:]+:[^:]*:[^:]+:$/.test(upid)) {
            throw new ApiError(400, "Parameter verification failed.", { upid: "unable to parse worker upid" });
        }
        // Tasks.pm raises a parameter exception: the reason is the generic one, the words are in errors.upid.
        if (!task || Date.now() < task.visibleAt) throw new ApiError(400, "Parameter verification failed.", { upid: "no such task" });
        if (what === "log") {
            const start = Number(params.start ?? 0);
            const limit = Number(params.limit ?? 50);
            return task.log.slice(start, start + limit).map((t, i) => ({ n: start + i + 1, t }));
        }
        return {
            upid, node: task.node, pid: task.pid, pstart: task.pstart, starttime: task.starttime, type: task.type, id: task.id, user: task.user,
            status: task.status, ...(task.exitstatus !== undefined ? { exitstatus: task.exitstatus } : {}),
        };
    }
}

