/**
 * A Proxmox VE API emulator: an HTTPS server speaking the slice of
 * /api2/json that restoring golden-image containers uses. No real Proxmox VE
 * can run on this machine, so it checks what the real server checks, as
 * pve-manager, pve-container and pve-common do:
 *
 * - `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`; a bad token gets
 *   401 after the server's 3 s delay (scaled), a missing privilege 403
 *   "Permission check failed (<path>, <privilege>)" (access.ts).
 * - Success is `{"data": ...}`; errors carry their message in the HTTP
 *   reason phrase and `{"data":null}` in the body; parameter errors (400
 *   "Parameter verification failed.") add `"errors": {param: message}`.
 * - Containers, archives, the config lock and digests: guests.ts; tasks
 *   with real UPIDs, status and log endpoints: tasks.ts; faults on demand:
 *   faults.ts.
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
import { ApiError, authenticate, PveToken } from "./access";
import { ForkFault, HttpFault, PveFaults, TaskFault } from "./faults";
import { PveGuests } from "./guests";
import { PveTasks } from "./tasks";
import { PVE_TIMINGS, PveTimings } from "./timings";

export interface PveEmulatorOptions {
    node?: string;
    storages?: string[];
    tokens?: PveToken[];
    /** Multiplies every duration in PVE_TIMINGS. */
    timeScale?: number;
    /** Overrides single timings (before scaling). */
    timings?: Partial<PveTimings>;
}

export interface RecordedRequest {
    method: string;
    path: string;
    status: number;
    vmid?: number;
    at: number;
}

const API_PREFIX = "/api2/json";

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

    private readonly timings: PveTimings;
    private readonly faults = new PveFaults();
    private readonly tasks: PveTasks;
    private readonly guests: PveGuests;
    private readonly inFlight = new Map<number, number>();
    private server?: https.Server;
    private tempDir = "";

    constructor(options: PveEmulatorOptions = {}) {
        this.node = options.node ?? "pve";
        this.storages = options.storages ?? ["local", "local-lvm"];
        this.tokens = options.tokens ?? [];
        const scale = options.timeScale ?? 1;
        const base = { ...PVE_TIMINGS, ...options.timings };
        this.timings = Object.fromEntries(Object.entries(base).map(([k, v]) => [k, v * scale])) as PveTimings;
        this.tasks = new PveTasks(this.node, this.faults, this.timings.taskInvisibleMs);
        this.guests = new PveGuests(this.node, this.storages, this.timings, this.tasks);
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
        this.tasks.stop();
        this.server?.closeAllConnections();
        await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
        fs.rmSync(this.tempDir, { recursive: true, force: true });
    }

    /** Puts an archive on backup storage, with the config vzdump would have stored in it. */
    addArchive(volid: string, config: Record<string, string>): void {
        this.guests.addArchive(volid, config);
    }

    /** The live config of a container, or undefined. */
    guestConfig(vmid: number): Record<string, string> | undefined {
        return this.guests.config(vmid);
    }

    failRequests(fault: HttpFault): void {
        this.faults.addHttp(fault);
    }

    /** Tasks of a type that fail with a log, or end in `WARNINGS: n` with their effect kept. */
    failTasks(fault: TaskFault): void {
        this.faults.addTask(fault);
    }

    /**
     * The next `times` tasks of a type fail to start: 500 "got no worker
     * upid - start worker failed", after what the call did before forking
     * stays done (a restore's config, locked `create`), as fork_worker fails.
     */
    failForks(fault: ForkFault): void {
        this.faults.addFork(fault);
    }

    clearFaults(): void {
        this.faults.clear();
    }

    taskList(): { upid: string; type: string; exitstatus?: string }[] {
        return this.tasks.list();
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
            const token = await authenticate(req.headers.authorization, this.tokens, this.timings.authFailureDelayMs);
            const fault = this.faults.takeHttp(method, apiPath);
            if (fault) throw new ApiError(fault.status, fault.message);
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

    private async route(method: string, apiPath: string, params: Record<string, string>, token: PveToken): Promise<unknown> {
        if (method === "GET" && apiPath === "/version") return { version: "9.0.3", release: "9.0", repoid: "025864202ebb6109" };
        const nodeMatch = /^\/nodes\/([^/]+)(\/.*)?$/.exec(apiPath);
        if (!nodeMatch) throw new ApiError(501, `Method '${method} ${apiPath}' not implemented`);
        if (nodeMatch[1] !== this.node) {
            throw new ApiError(500, `hostname lookup '${nodeMatch[1]}' failed - failed to get address info for: ${nodeMatch[1]}: Name or service not known`);
        }
        const rest = nodeMatch[2] ?? "";
        let m: RegExpExecArray | null;
        if (method === "GET" && rest === "/vzdump/extractconfig") return this.guests.extractConfig(params, token);
        if (method === "POST" && rest === "/lxc") return this.guests.restore(params, token);
        if ((m = /^\/tasks\/([^/]+)\/(status|log)$/.exec(rest)) && method === "GET") return this.tasks.endpoint(decodeURIComponent(m[1]), m[2], params);
        if (!(m = /^\/lxc\/(\d+)(\/.*)?$/.exec(rest))) throw new ApiError(501, `Method '${method} ${apiPath}' not implemented`);
        const vmid = Number(m[1]);
        const sub = m[2] ?? "";
        switch (`${method} ${sub}`) {
            case "GET /config":
                return this.guests.readConfig(vmid, token);
            case "PUT /config":
                return this.guests.updateConfig(vmid, params, token);
            case "PUT /resize":
                return this.guests.resize(vmid, params, token);
            case "GET /status/current":
                return this.guests.status(vmid, token);
            case "GET /interfaces":
                return this.guests.readInterfaces(vmid, token);
            case "POST /status/start":
                return this.guests.start(vmid, token);
            case "POST /status/stop":
                return this.guests.stop(vmid, token);
            case "DELETE ":
                return this.guests.destroy(vmid, token);
            default:
                throw new ApiError(501, `Method '${method} ${apiPath}' not implemented`);
        }
    }
}
