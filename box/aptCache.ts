/**
 * The box's Debian package cache: a small caching HTTP forward proxy on the
 * underlay that the VMs' apt uses (Acquire::http::Proxy, written by the
 * image's platform helper from the seed disk). The nodes run the same
 * `apt-get update` and `apt-get install` as on Linode; only the bytes come
 * from this host (which reaches Debian's archive at tens of MB/s) instead of
 * through QEMU's user-mode NIC under emulation (about 100 kB/s).
 *
 * Policy:
 * - only the archive host the image's sources name (the mirror build.sh
 *   debootstrapped from; deb.debian.org by default) is served, over plain
 *   http; anything else is refused with 403, so the VMs are not given an
 *   open proxy;
 * - files under /pool/ and /by-hash/ are immutable (their name or path
 *   carries their version or hash): served from the cache forever once
 *   fetched;
 * - everything else (dists/.../InRelease, Release, ...) is fetched fresh
 *   upstream on every request and stored; when upstream fails (no answer,
 *   or 5xx) the cached copy is served instead;
 * - concurrent misses for one file share one upstream fetch (the VMs boot
 *   at once and want the same files), and the cache is written atomically
 *   (a unique temp file, then rename): a reader sees the whole file or none;
 * - every response is complete with a Content-Length, and connections stay
 *   open (apt keeps one and pipelines on it; Node answers pipelined requests
 *   in order).
 *
 * One log line per request: time, client, method, URL, outcome
 * (hit | miss | fresh | stale | passed | refused | bad | upstream-error),
 * status, bytes.
 *
 * Run detached by the box like MinIO (pidfile, log file, stopped on
 * `box:down`); `startAptCache` is the server itself, for tests.
 */
import { spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as path from "path";
import { stopByPidFile } from "./daemon";

export const APT_CACHE_PORT = 3142;
/** The host of the image's apt sources by default (box/image/build.sh: debootstrap's sources.list names its mirror). */
export const DEFAULT_ARCHIVE_HOSTS: readonly string[] = ["deb.debian.org"];
const UPSTREAM_TIMEOUT_MS = 30_000;

/**
 * hit: an immutable file from the cache; miss: one fetched and stored;
 * fresh: an index fetched and stored; stale: the cached index, upstream
 * having failed; passed: upstream's other answer (404, 3xx) as it was;
 * refused/bad: not served; upstream-error: upstream failed, nothing cached.
 */
export type AptCacheOutcome = "hit" | "miss" | "fresh" | "stale" | "passed" | "refused" | "bad" | "upstream-error";

export interface AptCacheOptions {
    host: string;
    /** 0 picks a free port. */
    port: number;
    cacheDir: string;
    /** Where archive requests really go, e.g. http://127.0.0.1:1 (tests); by default the requested host on port 80. The Host header stays the requested host. */
    upstream?: string;
    /** host or host:port (port 80 when not given); DEFAULT_ARCHIVE_HOSTS when not set. */
    allowedHosts?: readonly string[];
    log: (line: string) => void;
}

export interface AptCache {
    port: number;
    close(): Promise<void>;
}

/** Files whose content never changes under their URL. */
export function immutablePath(pathname: string): boolean {
    return /\/(pool|by-hash)\//.test(pathname);
}

/** The cache file for a URL path, or undefined when the path could escape the cache or is not a plain file path. */
export function cacheFileFor(cacheDir: string, host: string, pathname: string): string | undefined {
    const segments = pathname.split("/").slice(1);
    if (segments.length === 0 || segments.some((s) => !/^[A-Za-z0-9._+~%:-]+$/.test(s) || s === "." || s === "..")) return undefined;
    return path.join(cacheDir, host, ...segments);
}

interface Upstream {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: Buffer;
}

/** GET of the whole file (a HEAD from apt is answered from it too). */
function fetchUpstream(target: URL, upstream: string | undefined): Promise<Upstream> {
    const base = upstream ? new URL(upstream) : new URL(`http://${target.host}`);
    return new Promise((resolve, reject) => {
        const req = http.request(
            { hostname: base.hostname, port: base.port || 80, path: target.pathname, method: "GET", headers: { host: target.host, "user-agent": "meshstack-box-apt-cache" }, agent: keepAliveAgent },
            (res) => {
                const chunks: Buffer[] = [];
                res.on("data", (c: Buffer) => chunks.push(c));
                res.on("end", () => {
                    const body = Buffer.concat(chunks);
                    // A body cut short is a failed fetch, never a file to cache.
                    const expected = res.headers["content-length"];
                    if (expected !== undefined && Number(expected) !== body.length) reject(new Error(`upstream sent ${body.length} of ${expected} bytes`));
                    else resolve({ status: res.statusCode ?? 502, headers: res.headers, body });
                });
                res.on("error", reject);
            },
        );
        req.setTimeout(UPSTREAM_TIMEOUT_MS, () => req.destroy(new Error(`no answer from upstream in ${UPSTREAM_TIMEOUT_MS / 1000}s`)));
        req.on("error", reject);
        req.end();
    });
}

const keepAliveAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });

/** Writes the file as a whole or not at all: readers see the old copy or the new one, never a part. */
function writeAtomically(file: string, body: Buffer): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const temp = `${file}.tmp-${process.pid}-${crypto.randomBytes(6).toString("hex")}`;
    try {
        fs.writeFileSync(temp, body);
        fs.renameSync(temp, file);
    } catch (err) {
        fs.rmSync(temp, { force: true });
        throw err;
    }
}

function readCached(file: string): Buffer | undefined {
    try {
        return fs.readFileSync(file);
    } catch {
        return undefined;
    }
}

function contentType(pathname: string): string {
    if (pathname.endsWith(".deb")) return "application/vnd.debian.binary-package";
    if (/\.(xz|gz|bz2|lz4|zst)$/.test(pathname)) return "application/octet-stream";
    return "text/plain";
}

/** Starts the proxy; resolves once it listens. */
export function startAptCache(options: AptCacheOptions): Promise<AptCache> {
    const hostPort = (host: string) => (/:\d+$/.test(host) ? host : `${host}:80`).toLowerCase();
    const allowedHosts = options.allowedHosts ?? DEFAULT_ARCHIVE_HOSTS;
    const allowed = new Set(allowedHosts.map(hostPort));
    /** Fetches under way, by cache file: a second miss waits for the first instead of fetching again. */
    const inflight = new Map<string, Promise<Upstream>>();
    const fetchAndStore = (target: URL, file: string): Promise<Upstream> => {
        let fetching = inflight.get(file);
        if (!fetching) {
            fetching = fetchUpstream(target, options.upstream).then((up) => {
                if (up.status === 200) {
                    try {
                        writeAtomically(file, up.body);
                    } catch (err) {
                        // A full disk or the like costs the cache, not the client's answer.
                        options.log(`${new Date().toISOString()} cache write of ${file} failed: ${(err as Error).message}`);
                    }
                }
                return up;
            }).finally(() => inflight.delete(file));
            inflight.set(file, fetching);
        }
        return fetching;
    };
    const server = http.createServer((req, res) => {
        const client = req.socket.remoteAddress ?? "?";
        const method = req.method ?? "?";
        const done = (outcome: AptCacheOutcome, status: number, body: Buffer, headers: Record<string, string> = {}) => {
            res.writeHead(status, { "content-length": String(body.length), ...headers });
            res.end(method === "HEAD" ? undefined : body);
            options.log(`${new Date().toISOString()} ${client} ${method} ${req.url} ${outcome} ${status} ${body.length}`);
        };
        const refuse = (outcome: AptCacheOutcome, status: number, why: string) => done(outcome, status, Buffer.from(`${why}\n`), { "content-type": "text/plain" });

        let target: URL;
        try {
            target = new URL(req.url ?? "");
        } catch {
            // Only proxy requests (absolute URIs) are served; this is not a web server.
            return refuse("bad", 400, "absolute http:// URI required (use this as an HTTP proxy)");
        }
        if (target.protocol !== "http:" || !allowed.has(hostPort(target.host))) {
            return refuse("refused", 403, `only http://${allowedHosts.join(", http://")} is served`);
        }
        if (method !== "GET" && method !== "HEAD") return refuse("bad", 405, "GET and HEAD only");
        if (target.search) return refuse("bad", 400, "no query strings");
        const file = cacheFileFor(options.cacheDir, target.host.toLowerCase(), target.pathname);
        if (!file) return refuse("bad", 400, "not an archive path");
        const headers = { "content-type": contentType(target.pathname) };

        const immutable = immutablePath(target.pathname);
        if (immutable) {
            const cached = readCached(file);
            if (cached) return done("hit", 200, cached, headers);
        }
        fetchAndStore(target, file).then(
            (up) => {
                if (up.status === 200) return done(immutable ? "miss" : "fresh", 200, up.body, headers);
                const cached = immutable ? undefined : up.status >= 500 ? readCached(file) : undefined;
                if (cached) return done("stale", 200, cached, headers);
                // 404 and the like go back as they are (apt tries InRelease, then Release); nothing is cached.
                const passed: Record<string, string> = { "content-type": String(up.headers["content-type"] ?? "text/plain") };
                if (up.headers.location) passed.location = up.headers.location;
                return done(up.status >= 500 ? "upstream-error" : "passed", up.status, up.body, passed);
            },
            (err: Error) => {
                const cached = immutable ? undefined : readCached(file);
                if (cached) return done("stale", 200, cached, headers);
                return refuse("upstream-error", 502, `upstream failed: ${err.message}`);
            },
        );
    });
    // A tunnel would carry anything to anywhere: refused like any other host.
    server.on("connect", (req: http.IncomingMessage, socket: net.Socket) => {
        socket.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        options.log(`${new Date().toISOString()} ${socket.remoteAddress ?? "?"} CONNECT ${req.url} refused 403 0`);
    });
    // apt keeps its connection open between the files of one run.
    server.keepAliveTimeout = 60_000;
    server.headersTimeout = 65_000;
    return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(options.port, options.host, () => {
            server.off("error", reject);
            const port = (server.address() as net.AddressInfo).port;
            resolve({
                port,
                close: () =>
                    new Promise<void>((r) => {
                        server.close(() => r());
                        server.closeAllConnections();
                    }),
            });
        });
    });
}

/** The box's cache process: detached with a pidfile, like MinIO, so it outlives `npm run box` as the VMs do. */
export class BoxAptCache {
    constructor(
        private readonly runDir: string,
        readonly address: string,
        private readonly cacheDir: string,
        private readonly archiveHosts: readonly string[] = DEFAULT_ARCHIVE_HOSTS,
        readonly port = APT_CACHE_PORT,
    ) {}

    /** What the VMs put in Acquire::http::Proxy. */
    get proxyUrl(): string {
        return `http://${this.address}:${this.port}/`;
    }

    static pidFile(runDir: string): string {
        return path.join(runDir, "apt-cache.pid");
    }

    static logFile(runDir: string): string {
        return path.join(runDir, "apt-cache.log");
    }

    /** Starts the process and resolves once it accepts connections. */
    async start(): Promise<void> {
        fs.mkdirSync(this.runDir, { recursive: true });
        fs.mkdirSync(this.cacheDir, { recursive: true });
        const log = fs.openSync(BoxAptCache.logFile(this.runDir), "a");
        const child = spawn(process.execPath, ["-r", require.resolve("ts-node/register/transpile-only"), __filename, "--listen", `${this.address}:${this.port}`, "--cache", this.cacheDir, "--archive-hosts", this.archiveHosts.join(",")], {
            cwd: path.resolve(__dirname, ".."),
            stdio: ["ignore", log, log],
            detached: true,
        });
        fs.closeSync(log);
        fs.writeFileSync(BoxAptCache.pidFile(this.runDir), String(child.pid));
        let exited: number | null | undefined;
        child.once("exit", (code) => (exited = code));
        child.unref();
        const deadline = Date.now() + 30_000;
        for (;;) {
            if (await accepts(this.address, this.port)) return;
            if (exited !== undefined || Date.now() > deadline) throw new Error(`the apt cache did not listen on ${this.address}:${this.port}:\n${fs.readFileSync(BoxAptCache.logFile(this.runDir), "utf8")}`);
            await new Promise((r) => setTimeout(r, 200));
        }
    }

    /** Starts the process unless one accepts connections on its address already; true when it had to start it. */
    async ensureRunning(): Promise<boolean> {
        if (await accepts(this.address, this.port)) return false;
        BoxAptCache.stop(this.runDir);
        await this.start();
        return true;
    }

    /** Stops the process of this run directory; false when none ran. */
    static stop(runDir: string): boolean {
        return stopByPidFile(BoxAptCache.pidFile(runDir), "aptCache", "SIGTERM");
    }
}

function accepts(host: string, port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const socket = net.connect({ host, port });
        socket.once("connect", () => {
            socket.destroy();
            resolve(true);
        });
        socket.once("error", () => resolve(false));
    });
}

/** The detached process: `node -r ts-node/register/transpile-only box/aptCache.ts --listen HOST:PORT --cache DIR --archive-hosts H[,H]`, logging to stdout. */
if (require.main === module) {
    const arg = (name: string) => {
        const i = process.argv.indexOf(name);
        if (i < 0 || !process.argv[i + 1]) throw new Error(`usage: aptCache.ts --listen HOST:PORT --cache DIR --archive-hosts H[,H] (missing ${name})`);
        return process.argv[i + 1];
    };
    const [host, port] = arg("--listen").split(":");
    const allowedHosts = arg("--archive-hosts").split(",");
    startAptCache({ host, port: Number(port), cacheDir: arg("--cache"), allowedHosts, log: (line) => console.log(line) }).then(
        (cache) => {
            console.log(`${new Date().toISOString()} apt cache on ${host}:${cache.port}, cache ${arg("--cache")}, archive hosts ${allowedHosts.join(", ")}`);
            const stop = () => void cache.close().then(() => process.exit(0));
            process.on("SIGTERM", stop);
            process.on("SIGINT", stop);
        },
        (err: Error) => {
            console.error(`apt cache failed to start: ${err.message}`);
            process.exit(1);
        },
    );
}
