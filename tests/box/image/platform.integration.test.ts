/**
 * The image's platform helper (box/image/platform/meshstack-box-platform)
 * against a seed written by the box's own seed writer: it trusts the box CA
 * and points apt at the box's apt cache, and ignores an apt-proxy value that
 * is not a plain http URL. It runs in a private mount namespace with the
 * directories it writes bound to temp directories, so the host is left
 * alone. This kernel has no iso9660, so `blkid` and `mount` are stand-ins
 * that hand the helper the seed's content directory. Needs root (unshare).
 */
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { writeSeedIso } from "../../../box/vm";

const HELPER = path.resolve(__dirname, "../../..", "box", "image", "platform", "meshstack-box-platform");
const CA = "-----BEGIN CERTIFICATE-----\nbox CA stand-in\n-----END CERTIFICATE-----\n";

/** Runs the helper on a seed with these extra files; returns what it wrote where apt and the CA store live. */
function runHelper(extra: Record<string, string>): { aptConf: Record<string, string>; bundleTail: string; stderr: string } {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "box-platform-"));
    try {
        writeSeedIso(tmp, { metaData: "instance-id: i-1\n", userData: Buffer.from("#cloud-config\n"), extra });
        const dirs = { apt: path.join(tmp, "apt.conf.d"), certs: path.join(tmp, "certs"), local: path.join(tmp, "local-ca"), bin: path.join(tmp, "bin") };
        for (const d of Object.values(dirs)) fs.mkdirSync(d);
        fs.writeFileSync(path.join(dirs.certs, "ca-certificates.crt"), "bundle\n");
        fs.writeFileSync(path.join(dirs.bin, "blkid"), "#!/bin/sh\necho /dev/cidata-stand-in\n", { mode: 0o755 });
        // `mount -o ro DEV DIR`: the seed's content directory, read-only, where the ISO would be mounted.
        fs.writeFileSync(path.join(dirs.bin, "mount"), `#!/bin/sh\nexec /usr/bin/mount --bind -o ro '${path.join(tmp, "seed")}' "$4"\n`, { mode: 0o755 });
        const script = [
            "set -e",
            "mount --make-rprivate /",
            `mount --bind '${dirs.apt}' /etc/apt/apt.conf.d`,
            `mount --bind '${dirs.certs}' /etc/ssl/certs`,
            `mount --bind '${dirs.local}' /usr/local/share/ca-certificates`,
            `PATH='${dirs.bin}':"$PATH" sh '${HELPER}' 2>'${path.join(tmp, "stderr")}'`,
        ].join("\n");
        execFileSync("unshare", ["--mount", "sh", "-c", script], { stdio: ["ignore", "pipe", "pipe"] });
        const aptConf = Object.fromEntries(fs.readdirSync(dirs.apt).map((f) => [f, fs.readFileSync(path.join(dirs.apt, f), "utf8")]));
        return { aptConf, bundleTail: fs.readFileSync(path.join(dirs.certs, "ca-certificates.crt"), "utf8"), stderr: fs.readFileSync(path.join(tmp, "stderr"), "utf8") };
    } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
    }
}

describe("box image platform helper: what the seed gives a VM before cloud-init", () => {
    it("trusts the box CA and points apt at the box's apt cache", () => {
        const { aptConf, bundleTail } = runHelper({ "box-ca.crt": CA, "apt-proxy": "http://198.51.100.1:3142/\n" });
        assert.deepStrictEqual(aptConf, { "90meshstack-box-proxy": 'Acquire::http::Proxy "http://198.51.100.1:3142/";\n' });
        assert.strictEqual(bundleTail, `bundle\n${CA}`);
    });

    it("leaves apt alone without an apt-proxy on the seed, and with one that could break out of apt.conf's string", () => {
        assert.deepStrictEqual(runHelper({ "box-ca.crt": CA }).aptConf, {});
        const bad = runHelper({ "apt-proxy": 'http://198.51.100.1:3142/";\nAcquire::http::Proxy "http://elsewhere/\n' });
        assert.deepStrictEqual(bad.aptConf, {});
        assert.match(bad.stderr, /is not a plain http URL; ignored/);
        assert.deepStrictEqual(runHelper({ "apt-proxy": "https://198.51.100.1:3142/\n" }).aptConf, {});
    });
});
