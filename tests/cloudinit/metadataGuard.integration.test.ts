import * as assert from "assert";
import { ChildProcess, execFile, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { METADATA_GUARD_TABLE, METADATA_SERVICE_ADDRESSES, renderMetadataGuardRules, renderMetadataGuardUnit } from "../../cloudinit/metadataGuard";
import { toolPath } from "../support/tools";

const run = promisify(execFile);

/**
 * The guard's nftables rules, loaded for real in a network namespace of its
 * own that holds the metadata service's addresses and a stand-in service
 * answering with "user-data". Root and an unprivileged user then try it.
 */
describe("metadata service guard (nftables in a network namespace)", function () {
    this.timeout(60_000);
    const ns = `meshstack-md-${crypto.randomBytes(3).toString("hex")}`;
    let dir: string;
    let rules: string;
    let service: ChildProcess | undefined;
    const inNs = (...argv: string[]) => run("ip", ["netns", "exec", ns, ...argv]);
    const fetchAs = async (uid: number | "root", url: string): Promise<{ ok: boolean; body: string; code?: number }> => {
        const curl = [toolPath("curl"), "-sS", "-g", "--max-time", "3", url];
        const argv = uid === "root" ? curl : [toolPath("setpriv"), `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", ...curl];
        try {
            const { stdout } = await inNs(...argv);
            return { ok: true, body: stdout };
        } catch (err) {
            return { ok: false, body: "", code: (err as { code?: number }).code };
        }
    };
    const v4 = `http://${METADATA_SERVICE_ADDRESSES.ipv4}/`;
    const v6 = `http://[${METADATA_SERVICE_ADDRESSES.ipv6}]/`;

    before(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-metadata-guard-"));
        rules = path.join(dir, "metadata-guard.nft");
        fs.writeFileSync(rules, renderMetadataGuardRules());
        await run("ip", ["netns", "add", ns]);
        await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
        // A veth pair, not a dummy link: veth is what these machines' kernels have.
        await run("ip", ["-n", ns, "link", "add", "md0", "type", "veth", "peer", "name", "md1"]);
        await run("ip", ["-n", ns, "link", "set", "md1", "up"]);
        await run("ip", ["-n", ns, "addr", "add", `${METADATA_SERVICE_ADDRESSES.ipv4}/32`, "dev", "md0"]);
        await run("ip", ["-n", ns, "addr", "add", `${METADATA_SERVICE_ADDRESSES.ipv6}/128`, "dev", "md0", "nodad"]);
        await run("ip", ["-n", ns, "link", "set", "md0", "up"]);
        service = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", 'require("http").createServer((q, r) => r.end("user-data")).listen(80, "::")'], { stdio: "ignore" });
        for (let i = 0; i < 50 && !(await fetchAs("root", v4)).ok; i++) await new Promise((r) => setTimeout(r, 100));
    });

    after(async () => {
        service?.kill("SIGKILL");
        await run("ip", ["netns", "del", ns]).catch(() => undefined);
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("is a ruleset nft accepts", async () => {
        await run(toolPath("nft"), ["-c", "-f", rules]);
    });

    it("without the guard, any user reads the service (what the guard is for)", async () => {
        assert.deepStrictEqual(await fetchAs(65534, v4), { ok: true, body: "user-data" });
    });

    it("with the guard, root still reads the service over IPv4 and IPv6", async () => {
        await inNs(toolPath("nft"), "-f", rules);
        assert.deepStrictEqual(await fetchAs("root", v4), { ok: true, body: "user-data" });
        assert.deepStrictEqual(await fetchAs("root", v6), { ok: true, body: "user-data" });
    });

    it("with the guard, an unprivileged user (a service such as nats) is refused over IPv4 and IPv6", async () => {
        for (const url of [v4, v6]) {
            const attempt = await fetchAs(65534, url);
            assert.strictEqual(attempt.ok, false, `${url} answered an unprivileged user`);
            assert.strictEqual(attempt.code, 7, "curl: could not connect (rejected), not a timeout");
        }
    });

    it("loads again without stacking a second copy (every boot runs it)", async () => {
        await inNs(toolPath("nft"), "-f", rules);
        const { stdout } = await inNs(toolPath("nft"), "list", "ruleset");
        assert.strictEqual(stdout.split(`table inet ${METADATA_GUARD_TABLE}`).length - 1, 1);
        assert.strictEqual((stdout.match(/meta skuid != 0/g) ?? []).length, 2);
    });

    it("ships in a unit systemd accepts, loading it before the network comes up", async () => {
        const unit = path.join(dir, "meshstack-metadata-guard.service");
        fs.writeFileSync(unit, renderMetadataGuardUnit().replace("/usr/sbin/nft", toolPath("nft")));
        await run("systemd-analyze", ["verify", unit]);
        assert.match(renderMetadataGuardUnit(), /^Before=network-pre\.target$/m);
    });
});
