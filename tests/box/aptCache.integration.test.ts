/**
 * The box's apt cache (box/aptCache.ts) driven by the host's real apt-get
 * against Debian's archive, as the VMs' apt drives it: update and a package
 * download through it, the second run served from the cache, other hosts
 * refused, and the indexes served from the cache when upstream is down.
 * Needs apt-get and a network path to deb.debian.org.
 */
import * as assert from "assert";
import { execFile } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { AptCache, BoxAptCache, cacheFileFor, startAptCache } from "../../box/aptCache";
import { imageArchiveHost } from "../../box/image";
import { freePort, waitFor } from "../support/ports";

const SOURCE = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main\n";

interface Run {
    dir: string;
    lines: string[];
    cache: AptCache;
}

/** apt-get through the proxy with its own lists, cache and sources: nothing of the host's apt state is read or changed. */
function aptGet(work: string, port: number, args: string[]): Promise<string> {
    const dirs = { lists: path.join(work, "lists"), cache: path.join(work, "apt-cache"), etc: path.join(work, "etc") };
    for (const d of [path.join(dirs.lists, "partial"), path.join(dirs.cache, "archives", "partial"), path.join(dirs.etc, "sources.list.d")]) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(dirs.etc, "sources.list"), SOURCE);
    // The host's apt.conf.d adds index targets (appstream) and methods the VMs do not have; APT_CONFIG is read before it, so it can switch it off.
    fs.writeFileSync(path.join(dirs.etc, "apt.conf"), 'Dir::Etc::Parts "/dev/null";\nDir::Etc::Main "/dev/null";\n');
    const options = [
        `Acquire::http::Proxy=http://127.0.0.1:${port}/`,
        `Dir::State::Lists=${dirs.lists}`,
        `Dir::Cache=${dirs.cache}`,
        `Dir::Etc::SourceList=${path.join(dirs.etc, "sources.list")}`,
        `Dir::Etc::SourceParts=${path.join(dirs.etc, "sources.list.d")}`,
        // As the box image: no translations.
        "Acquire::Languages=none",
        // The temp directories are root's; apt's _apt sandbox user could not write them.
        "APT::Sandbox::User=root",
    ].flatMap((o) => ["-o", o]);
    return new Promise((resolve, reject) => {
        execFile("apt-get", [...options, ...args], { cwd: work, env: { ...process.env, APT_CONFIG: path.join(dirs.etc, "apt.conf"), LANG: "C" }, encoding: "utf8" }, (err, stdout, stderr) => {
            if (err) reject(new Error(`apt-get ${args.join(" ")} failed: ${err.message}\n${stdout}\n${stderr}`));
            else resolve(stdout + stderr);
        });
    });
}

function proxyRequest(port: number, method: string, url: string): Promise<{ status: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
        const req = http.request({ host: "127.0.0.1", port, method, path: url, agent: false }, (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        });
        req.on("error", reject);
        req.end();
    });
}

/** The log lines of one outcome (hit, miss, fresh, stale, ...) whose URL matches. */
function outcomes(lines: string[], outcome: string, url: RegExp): string[] {
    return lines.filter((l) => l.split(" ")[4] === outcome && url.test(l.split(" ")[3]));
}

async function start(cacheDir: string, upstream?: string): Promise<Run> {
    const lines: string[] = [];
    const cache = await startAptCache({ host: "127.0.0.1", port: 0, cacheDir, upstream, log: (l) => lines.push(l) });
    return { dir: cacheDir, lines, cache };
}

describe("box apt cache: the VMs' Debian archive on the underlay", function () {
    this.timeout(120_000);
    let tmp: string;
    let cacheDir: string;
    let run: Run | undefined;

    before(() => {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), "box-apt-cache-"));
        cacheDir = path.join(tmp, "cache");
    });
    afterEach(async () => {
        await run?.cache.close();
        run = undefined;
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it("serves apt-get update and a package download from Debian's archive, caching what it fetched", async () => {
        run = await start(cacheDir);
        const work = path.join(tmp, "first");
        await aptGet(work, run.cache.port, ["update"]);
        await aptGet(work, run.cache.port, ["download", "wireguard-tools"]);
        assert.ok(fs.readdirSync(work).some((f) => /^wireguard-tools_.*\.deb$/.test(f)), "apt-get download left no wireguard-tools .deb");
        assert.strictEqual(outcomes(run.lines, "fresh", /\/dists\/bookworm\/InRelease$/).length, 1, run.lines.join("\n"));
        assert.strictEqual(outcomes(run.lines, "miss", /\/pool\/main\/w\/wireguard\/wireguard-tools_/).length, 1, run.lines.join("\n"));
        assert.ok(outcomes(run.lines, "miss", /\/by-hash\//).length >= 1, `apt fetched no index by hash:\n${run.lines.join("\n")}`);
        const inRelease = cacheFileFor(cacheDir, "deb.debian.org", "/debian/dists/bookworm/InRelease")!;
        assert.match(fs.readFileSync(inRelease, "utf8"), /^-----BEGIN PGP SIGNED MESSAGE-----/);
    });

    it("serves a second run's immutable files from the cache, fetching only the indexes that change", async () => {
        run = await start(cacheDir);
        const work = path.join(tmp, "second");
        await aptGet(work, run.cache.port, ["update"]);
        await aptGet(work, run.cache.port, ["download", "wireguard-tools"]);
        assert.deepStrictEqual(outcomes(run.lines, "miss", /./), [], "an immutable file was fetched upstream again");
        assert.strictEqual(outcomes(run.lines, "hit", /\/pool\/main\/w\/wireguard\/wireguard-tools_/).length, 1, run.lines.join("\n"));
        assert.ok(outcomes(run.lines, "hit", /\/by-hash\//).length >= 1, run.lines.join("\n"));
        assert.strictEqual(outcomes(run.lines, "fresh", /\/InRelease$/).length, 1, "InRelease is not fetched fresh");
    });

    it("is no open proxy: other hosts, other schemes and tunnels get 403", async () => {
        run = await start(cacheDir);
        for (const url of ["http://example.com/debian/dists/bookworm/InRelease", "http://deb.debian.org:8080/debian/dists/bookworm/InRelease", "http://deb.debian.org.example.com/debian/", "http://security.debian.org/"]) {
            const { status } = await proxyRequest(run.cache.port, "GET", url);
            assert.strictEqual(status, 403, url);
        }
        assert.strictEqual((await proxyRequest(run.cache.port, "GET", "/debian/dists/bookworm/InRelease")).status, 400, "a plain web request is not a proxy request");
        assert.strictEqual((await proxyRequest(run.cache.port, "GET", "http://deb.debian.org/debian/dists/bookworm/InRelease?x=1")).status, 400);
        const connect = await new Promise<string>((resolve, reject) => {
            const socket = net.connect(run!.cache.port, "127.0.0.1", () => socket.write("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"));
            let answer = "";
            socket.on("data", (d) => (answer += d.toString()));
            socket.on("end", () => resolve(answer));
            socket.on("error", reject);
        });
        assert.match(connect, /^HTTP\/1\.1 403 /);
        assert.strictEqual(outcomes(run.lines, "refused", /./).length, 5, run.lines.join("\n"));
    });

    it("serves the cached indexes when upstream fails, and says 502 for what it never had", async () => {
        const dead = await freePort();
        run = await start(cacheDir, `http://127.0.0.1:${dead}`);
        const work = path.join(tmp, "offline");
        await aptGet(work, run.cache.port, ["update"]);
        await aptGet(work, run.cache.port, ["download", "wireguard-tools"]);
        assert.strictEqual(outcomes(run.lines, "stale", /\/dists\/bookworm\/InRelease$/).length, 1, run.lines.join("\n"));
        const cachedInRelease = fs.readFileSync(cacheFileFor(cacheDir, "deb.debian.org", "/debian/dists/bookworm/InRelease")!);
        const served = await proxyRequest(run.cache.port, "GET", "http://deb.debian.org/debian/dists/bookworm/InRelease");
        assert.strictEqual(served.status, 200);
        assert.ok(served.body.equals(cachedInRelease));
        const never = await proxyRequest(run.cache.port, "GET", "http://deb.debian.org/debian/pool/main/n/nftables/nftables_0.0-0_amd64.deb");
        assert.strictEqual(never.status, 502);
    });
});

describe("box apt cache: writes", function () {
    let tmp: string;
    let upstream: http.Server;
    let upstreamPort: number;
    let hits = 0;
    let failing = false;
    let cache: AptCache | undefined;
    const payload = Buffer.alloc(2 * 1024 * 1024, "x");

    before(async () => {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), "box-apt-writes-"));
        // A stand-in archive: answers slowly, so concurrent misses overlap; cuts one file short, has no "missing", and fails with 503 when told to.
        upstream = http.createServer((req, res) => {
            hits++;
            if (failing) {
                res.writeHead(503, { "content-length": "0" }).end();
            } else if (req.url?.includes("missing")) {
                res.writeHead(404, { "content-type": "text/html", "content-length": "9" }).end("not found");
            } else if (req.url?.includes("short")) {
                res.writeHead(200, { "content-length": String(payload.length) });
                res.write(payload.subarray(0, 1000));
                setTimeout(() => res.destroy(), 50);
            } else {
                setTimeout(() => {
                    res.writeHead(200, { "content-length": String(payload.length) });
                    res.end(payload);
                }, 200);
            }
        });
        await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", () => r()));
        upstreamPort = (upstream.address() as net.AddressInfo).port;
    });
    afterEach(async () => {
        await cache?.close();
        cache = undefined;
    });
    after(async () => {
        await new Promise<void>((r) => upstream.close(() => r()));
        fs.rmSync(tmp, { recursive: true, force: true });
    });

    it("answers concurrent misses for one file whole from one upstream fetch, and leaves one complete file and no temp files", async () => {
        cache = await startAptCache({ host: "127.0.0.1", port: 0, cacheDir: tmp, upstream: `http://127.0.0.1:${upstreamPort}`, log: () => undefined });
        const url = "http://deb.debian.org/debian/pool/main/f/foo/foo_1.0_amd64.deb";
        const first = hits;
        const answers = await Promise.all(Array.from({ length: 6 }, () => proxyRequest(cache!.port, "GET", url)));
        assert.strictEqual(hits - first, 1, "concurrent misses fetched the file more than once");
        for (const a of answers) {
            assert.strictEqual(a.status, 200);
            assert.ok(a.body.equals(payload));
        }
        const dir = path.dirname(cacheFileFor(tmp, "deb.debian.org", "/debian/pool/main/f/foo/foo_1.0_amd64.deb")!);
        assert.deepStrictEqual(fs.readdirSync(dir), ["foo_1.0_amd64.deb"]);
        assert.ok(fs.readFileSync(path.join(dir, "foo_1.0_amd64.deb")).equals(payload));
        const before = hits;
        assert.ok((await proxyRequest(cache.port, "GET", url)).body.equals(payload));
        assert.strictEqual(hits, before, "a cached pool file went upstream again");
    });

    it("passes a 404 on uncached, and answers an index from the cache when upstream says 503", async () => {
        const lines: string[] = [];
        cache = await startAptCache({ host: "127.0.0.1", port: 0, cacheDir: tmp, upstream: `http://127.0.0.1:${upstreamPort}`, log: (l) => lines.push(l) });
        const missing = await proxyRequest(cache.port, "GET", "http://deb.debian.org/debian/pool/main/m/missing/missing_1_amd64.deb");
        assert.strictEqual(missing.status, 404);
        assert.strictEqual(missing.body.toString(), "not found");
        assert.ok(!fs.existsSync(path.join(tmp, "deb.debian.org", "debian", "pool", "main", "m")));
        const index = "http://deb.debian.org/debian/dists/stub/InRelease";
        assert.ok((await proxyRequest(cache.port, "GET", index)).body.equals(payload));
        failing = true;
        try {
            const stale = await proxyRequest(cache.port, "GET", index);
            assert.strictEqual(stale.status, 200);
            assert.ok(stale.body.equals(payload));
            assert.strictEqual((await proxyRequest(cache.port, "GET", "http://deb.debian.org/debian/dists/stub/Release")).status, 503, "an index it never had is upstream's failure");
        } finally {
            failing = false;
        }
        assert.deepStrictEqual(lines.map((l) => l.split(" ").slice(4).join(" ")), ["passed 404 9", `fresh 200 ${payload.length}`, `stale 200 ${payload.length}`, "upstream-error 503 0"]);
    });

    it("caches nothing from an upstream answer cut short", async () => {
        cache = await startAptCache({ host: "127.0.0.1", port: 0, cacheDir: tmp, upstream: `http://127.0.0.1:${upstreamPort}`, log: () => undefined });
        const answer = await proxyRequest(cache.port, "GET", "http://deb.debian.org/debian/pool/main/s/short/short_1_amd64.deb");
        assert.strictEqual(answer.status, 502);
        assert.ok(!fs.existsSync(path.join(tmp, "deb.debian.org", "debian", "pool", "main", "s", "short")) || fs.readdirSync(path.join(tmp, "deb.debian.org", "debian", "pool", "main", "s", "short")).length === 0);
    });
});

describe("box apt cache: the box's process", function () {
    this.timeout(60_000);

    it("runs detached with a pidfile and a log, and stops by its pidfile", async () => {
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "box-apt-process-"));
        const runDir = path.join(tmp, "run");
        try {
            const cache = new BoxAptCache(runDir, "127.0.0.1", path.join(tmp, "cache"), ["deb.debian.org"], await freePort());
            await cache.start();
            const pid = Number(fs.readFileSync(BoxAptCache.pidFile(runDir), "utf8"));
            assert.strictEqual(cache.proxyUrl, `http://127.0.0.1:${cache.port}/`);
            assert.strictEqual((await proxyRequest(cache.port, "GET", "http://example.com/")).status, 403);
            assert.ok(BoxAptCache.stop(runDir), "stop found no process");
            assert.ok(!fs.existsSync(BoxAptCache.pidFile(runDir)));
            await waitFor("the apt cache process to exit", async () => !fs.existsSync(`/proc/${pid}`), 15_000);
            assert.match(fs.readFileSync(BoxAptCache.logFile(runDir), "utf8"), /GET http:\/\/example\.com\/ refused 403/);
            assert.strictEqual(BoxAptCache.stop(runDir), false, "a second stop found a process");
        } finally {
            BoxAptCache.stop(runDir);
            fs.rmSync(tmp, { recursive: true, force: true });
        }
    });
});

describe("box apt cache: which archive it serves", () => {
    const withMirror = (mirror: string | undefined) => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "box-image-"));
        try {
            if (mirror !== undefined) fs.writeFileSync(path.join(dir, "mirror"), `${mirror}\n`);
            return imageArchiveHost(dir);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    };

    it("is the host of the mirror the image was built from, when apt's http proxy can carry it", () => {
        assert.strictEqual(withMirror("http://deb.debian.org/debian"), "deb.debian.org");
        assert.strictEqual(withMirror("http://mirror.example.net:8080/debian"), "mirror.example.net:8080");
        assert.strictEqual(withMirror("https://deb.debian.org/debian"), undefined);
        assert.throws(() => withMirror(undefined), /does not say its Debian mirror; rebuild it/);
    });
});
