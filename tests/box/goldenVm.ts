/**
 * A Debian 12 root made with debootstrap, turned into a disk image and booted
 * as a QEMU VM under its own systemd: the closest this machine gets to a
 * restored Proxmox guest (systemd-nspawn --boot does not work here, there is
 * no systemd on the host, and /dev/kvm is nested and slower than TCG).
 *
 * Self-contained on purpose (one module, no imports from the rest of the
 * tests) so it can be folded into the box tier's VM module later.
 *
 * The debootstrap root is cached under ~/.cache/meshstack/golden-root/<key>,
 * keyed on suite and package list, so only the first run downloads Debian.
 */
import { execFile, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";

const run = promisify(execFile);

export const DEBIAN_SUITE = "bookworm";
/** What a golden guest is built from: systemd as init, sshd, a kernel with its initramfs. */
export const GOLDEN_ROOT_PACKAGES = [
    "systemd", "systemd-sysv", "udev", "openssh-server", "ca-certificates", "linux-image-amd64", "initramfs-tools",
];
/** Bytes of the ext4 image each copy boots from (sparse). */
const DISK_IMAGE_BYTES = 3 * 1024 ** 3;
/** TCG boots a Debian kernel + systemd in two to five minutes on a loaded 2-core box; leave room. */
export const BOOT_TIMEOUT_MS = 12 * 60_000;

function cacheDir(): string {
    return process.env.MESHSTACK_CACHE_DIR ?? path.join(os.homedir(), ".cache", "meshstack");
}

/** The Debian mirror this machine's apt uses, so the root comes from the same archive. */
export function debianMirror(): string {
    if (process.env.MESHSTACK_DEBIAN_MIRROR) return process.env.MESHSTACK_DEBIAN_MIRROR;
    const deb822 = "/etc/apt/sources.list.d/debian.sources";
    if (fs.existsSync(deb822)) {
        const stanza = fs.readFileSync(deb822, "utf8").split(/\n\s*\n/).find((s) => /^Suites:.*\bbookworm\b/m.test(s) && !/security/.test(s));
        const uri = stanza?.match(/^URIs:\s*(\S+)/m)?.[1];
        if (uri) return uri;
    }
    const legacy = fs.existsSync("/etc/apt/sources.list") ? fs.readFileSync("/etc/apt/sources.list", "utf8") : "";
    const line = legacy.match(/^deb\s+(\S+)\s+bookworm\s/m);
    if (line) return line[1];
    throw new Error("no Debian bookworm mirror in this machine's apt sources; set MESHSTACK_DEBIAN_MIRROR");
}

function tool(name: string): string {
    for (const dir of ["/usr/sbin", "/usr/bin", "/sbin", "/bin", ...(process.env.PATH ?? "").split(":")]) {
        const candidate = path.join(dir, name);
        if (fs.existsSync(candidate)) return candidate;
    }
    throw new Error(`${name} is not installed; run scripts/setup.sh`);
}

/** The cached debootstrap root for GOLDEN_ROOT_PACKAGES, built when missing. Returns its path. */
export async function ensureDebianRoot(log: (line: string) => void = () => undefined): Promise<string> {
    const key = crypto.createHash("sha256").update(`${DEBIAN_SUITE}\n${GOLDEN_ROOT_PACKAGES.join(",")}`).digest("hex").slice(0, 16);
    const dir = path.join(cacheDir(), "golden-root", key);
    if (fs.existsSync(path.join(dir, ".complete"))) return path.join(dir, "root");
    const building = path.join(dir, "root.partial");
    await removeWorkDir(building);
    fs.mkdirSync(building, { recursive: true });
    log(`debootstrap ${DEBIAN_SUITE} (${GOLDEN_ROOT_PACKAGES.join(", ")}) into ${building}`);
    await run("nice", [tool("debootstrap"), "--variant=minbase", `--include=${GOLDEN_ROOT_PACKAGES.join(",")}`, DEBIAN_SUITE, building, debianMirror()], {
        maxBuffer: 64 * 1024 * 1024,
    });
    await removeWorkDir(path.join(dir, "root"));
    fs.renameSync(building, path.join(dir, "root"));
    fs.writeFileSync(path.join(dir, ".complete"), new Date().toISOString());
    return path.join(dir, "root");
}

/** A copy of `source` at `target`, ownership, modes and links kept. */
export async function copyRoot(source: string, target: string): Promise<void> {
    await run("cp", ["-a", source, target]);
}

/** Runs `script` as root inside `root` (chroot with /proc, /sys and /dev), as a build container would. */
export async function runInChroot(root: string, script: string): Promise<{ stdout: string; stderr: string }> {
    const mounts: string[] = [];
    const mount = async (args: string[], at: string) => {
        await run("mount", [...args, path.join(root, at)]);
        mounts.unshift(path.join(root, at));
    };
    fs.writeFileSync(path.join(root, "tmp", "prepare.sh"), script, { mode: 0o755 });
    try {
        await mount(["-t", "proc", "proc"], "proc");
        await mount(["-t", "sysfs", "sysfs"], "sys");
        await mount(["--bind", "/dev"], "dev");
        // The chroot resolves names like its host, as a container on the host's network would.
        fs.copyFileSync("/etc/resolv.conf", path.join(root, "etc", "resolv.conf"));
        return await run("nice", ["chroot", root, "/bin/bash", "/tmp/prepare.sh"], { maxBuffer: 64 * 1024 * 1024, env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C" } });
    } finally {
        for (const at of mounts) await run("umount", ["-l", at]).catch(() => undefined);
        fs.rmSync(path.join(root, "tmp", "prepare.sh"), { force: true });
    }
}

/**
 * Removes a work directory, first detaching anything still mounted below it
 * (a chroot interrupted mid-run leaves /dev bound there, and a recursive
 * delete would reach into the host's /dev).
 */
export async function removeWorkDir(dir: string): Promise<void> {
    const below = () => fs.readFileSync("/proc/mounts", "utf8").split("\n").map((l) => l.split(" ")[1]).filter((m) => m && (m === dir || m.startsWith(`${dir}/`)));
    for (const mountPoint of below().sort().reverse()) await run("umount", ["-l", mountPoint]).catch(() => undefined);
    const left = below();
    if (left.length) throw new Error(`not removing ${dir}: still mounted below it: ${left.join(", ")}`);
    fs.rmSync(dir, { recursive: true, force: true });
}

export interface BootedVm {
    /** Everything the VM wrote on its serial console. */
    console: string;
    /** Lines the probe printed as `MESHSTACK-PROBE key=value`. */
    probe: Record<string, string>;
    elapsedMs: number;
}

export const PROBE_PREFIX = "MESHSTACK-PROBE";
/** Where the probe writes its report on the VM's disk (read back from the image after power-off). */
const PROBE_REPORT_PATH = "/var/lib/meshstack-probe.report";

/**
 * Installs a unit that waits for ssh.service to settle, writes what the test
 * checks to the VM's disk (and copies it to the serial console) and powers
 * the VM off. Test instrumentation
 * only: it is added to the copies, never to the golden.
 */
export function installProbe(root: string): void {
    const script = `#!/bin/bash
# Waits (90 s at most: systemctl alone takes seconds under TCG) until
# ssh.service stops changing state, then reports and powers off. A unit that
# keeps failing slower than its start limit stays "activating" (auto-restart);
# Result says how its last start ended either way.
while [ "$SECONDS" -lt 90 ]; do
  case "$(systemctl is-active ssh.service)" in activating|deactivating|reloading) sleep 2 ;; *) break ;; esac
done
{
  echo
  echo "${PROBE_PREFIX} ssh=$(systemctl is-active ssh.service)"
  echo "${PROBE_PREFIX} sshresult=$(systemctl show -p Result --value ssh.service)"
  echo "${PROBE_PREFIX} firstboot=$(systemctl is-active meshstack-ssh-hostkeys.service)"
  echo "${PROBE_PREFIX} machineid=$(cat /etc/machine-id)"
  for f in /etc/ssh/ssh_host_*_key.pub; do
    [ -e "$f" ] && echo "${PROBE_PREFIX} hostkey_$(basename "$f" .pub)=$(ssh-keygen -lf "$f" | awk '{print $2}')"
  done
  echo "${PROBE_PREFIX} done=1"
} > ${PROBE_REPORT_PATH}
# The disk is the record the test reads: a power-off has cut the serial copy
# short even after draining the UART. The console gets it for whoever watches.
sync
cat ${PROBE_REPORT_PATH} > /dev/ttyS0
systemctl poweroff
`;
    fs.writeFileSync(path.join(root, "usr/local/sbin/meshstack-probe"), script, { mode: 0o755 });
    fs.writeFileSync(
        path.join(root, "etc/systemd/system/meshstack-probe.service"),
        // Not After=multi-user.target: the target already orders itself after what it wants (a cycle).
            "[Unit]\nDescription=Report identity to the test and power off\nAfter=ssh.service meshstack-ssh-hostkeys.service systemd-machine-id-commit.service\n\n" +
            "[Service]\nType=oneshot\nExecStart=/usr/local/sbin/meshstack-probe\n\n[Install]\nWantedBy=multi-user.target\n",
    );
    const wants = path.join(root, "etc/systemd/system/multi-user.target.wants");
    fs.mkdirSync(wants, { recursive: true });
    fs.symlinkSync("/etc/systemd/system/meshstack-probe.service", path.join(wants, "meshstack-probe.service"));
}

function newest(dir: string, prefix: string): string {
    const found = fs.readdirSync(dir).filter((f) => f.startsWith(prefix)).sort();
    if (!found.length) throw new Error(`no ${prefix}* in ${dir}`);
    return path.join(dir, found[found.length - 1]);
}

/**
 * Boots `root` as a VM: ext4 image from the directory, its own kernel and
 * initramfs loaded directly, 512 MB, TCG, no network. Resolves when the VM
 * powers off; kills it at the deadline.
 */
export async function bootRoot(root: string, workDir: string, name: string): Promise<BootedVm> {
    const image = path.join(workDir, `${name}.ext4`);
    await run(tool("mkfs.ext4"), ["-q", "-F", "-L", "root", "-d", root, image, `${DISK_IMAGE_BYTES / 1024 ** 2}M`]);
    const kernel = newest(path.join(root, "boot"), "vmlinuz-");
    const initrd = newest(path.join(root, "boot"), "initrd.img-");
    const serial = path.join(workDir, `${name}.console.log`);
    const started = Date.now();
    const qemu = spawn("nice", [
        tool("qemu-system-x86_64"), "-accel", "tcg,tb-size=256", "-m", "512", "-smp", "1", "-nodefaults", "-no-reboot",
        "-display", "none", "-serial", `file:${serial}`, "-kernel", kernel, "-initrd", initrd,
        "-append", "root=/dev/vda rw console=ttyS0 panic=-1 quiet loglevel=3",
        "-drive", `file=${image},format=raw,if=virtio`, "-nic", "none",
    ], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    qemu.stderr!.on("data", (chunk) => (stderr += chunk));
    const exit = new Promise<number | null>((resolve) => qemu.on("exit", (code) => resolve(code)));
    const timer = setTimeout(() => qemu.kill("SIGKILL"), BOOT_TIMEOUT_MS);
    const code = await exit;
    clearTimeout(timer);
    // debugfs reads the file from the powered-off image; empty when the probe never wrote it.
    const report = await run(tool("debugfs"), ["-R", `cat ${PROBE_REPORT_PATH}`, image]).then((r) => r.stdout, () => "");
    fs.rmSync(image, { force: true });
    const consoleText = fs.existsSync(serial) ? fs.readFileSync(serial, "utf8") : "";
    const probe: Record<string, string> = {};
    for (const line of report.split(/\r?\n/)) {
        const m = line.match(new RegExp(`^${PROBE_PREFIX} ([a-z0-9_]+)=(.*)$`));
        if (m) probe[m[1]] = m[2].trim();
    }
    if (probe.done !== "1") {
        throw new Error(`VM ${name} did not report (qemu exit ${code}${Date.now() - started >= BOOT_TIMEOUT_MS ? ", killed at the deadline" : ""}): ${stderr}\n--- report on its disk ---\n${report}\n--- console tail ---\n${consoleText.slice(-3000)}`);
    }
    return { console: consoleText, probe, elapsedMs: Date.now() - started };
}
