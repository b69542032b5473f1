/**
 * One Debian VM under QEMU on this machine, with no Pulumi or meshstack
 * knowledge: reusable by anything that boots the box image (or another
 * debootstrapped root) from a NoCloud seed.
 *
 * Facts that shape it:
 * - /dev/kvm here is a nested, paravirtualised KVM that runs a stock kernel
 *   about 100 times slower than QEMU's own TCG, so TCG it is, with a 256 MB
 *   translation cache (the 1 GiB default costs 1.28 GB of host memory per VM).
 * - Kernel and initrd boot directly (no boot loader, no partition table: an
 *   ext4 disk, as Linode gives one).
 * - Each VM writes to its own qcow2 overlay of the cached image, so the image
 *   stays pristine and a VM powered off and on again keeps its disk.
 * - QEMU daemonizes with a pidfile: the VM outlives the command that started
 *   it (like a cloud instance outlives `pulumi up`) and is found again by
 *   its directory to stop it.
 */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

export interface BootImage {
    kernel: string;
    initrd: string;
    /** qcow2 root disk, used read-only as the backing file of each VM's overlay. */
    disk: string;
}

/** The image directory box/image/build.sh prints, as a BootImage. */
export function bootImageAt(dir: string): BootImage {
    const image = { kernel: path.join(dir, "vmlinuz"), initrd: path.join(dir, "initrd.img"), disk: path.join(dir, "root.qcow2") };
    for (const file of Object.values(image)) if (!fs.existsSync(file)) throw new Error(`box image ${dir} lacks ${path.basename(file)}; rebuild it with box/image/build.sh`);
    return image;
}

export interface SeedFiles {
    /** NoCloud meta-data (YAML). */
    metaData: string;
    /** The exact user-data bytes (gzip stays gzip: cloud-init detects it). */
    userData: Buffer;
    /** NoCloud network-config (v1 or v2 YAML). */
    networkConfig?: string;
    /** More files on the seed disk (read by the image's own boot helpers). */
    extra?: Record<string, string | Buffer>;
}

export interface VmNic {
    /** QEMU user-mode networking (NAT to the host and beyond; no host changes). */
    kind: "user" | "tap";
    mac: string;
    /** For kind tap: the tap device QEMU creates (up to 15 characters). */
    ifname?: string;
    /** PCI slot, so the guest's predictable interface name is fixed (slot 3 -> ens3). */
    pciSlot: number;
}

export interface VmSpec {
    name: string;
    /** The VM's own directory: overlay disk, seed, pidfile, console log. */
    dir: string;
    image: BootImage;
    seed: SeedFiles;
    nics: VmNic[];
    memoryMb?: number;
    cpus?: number;
    /** Extra kernel arguments. */
    append?: string;
}

export const VM_DEFAULTS = { memoryMb: 512, cpus: 1, tbSizeMb: 256 } as const;

/** A locally administered unicast MAC from a small number, stable per VM and NIC. */
export function macAddress(vmIndex: number, nicIndex: number): string {
    return ["52", "54", "00", "4d", (nicIndex & 0xff).toString(16).padStart(2, "0"), (vmIndex & 0xff).toString(16).padStart(2, "0")].join(":");
}

function readPid(file: string): number | undefined {
    try {
        const pid = Number(fs.readFileSync(file, "utf8").trim());
        return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
        return undefined;
    }
}

/** True while `pid` is a QEMU process: a recycled pid of anything else is never signalled. */
function alive(pid: number): boolean {
    try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("qemu-system");
    } catch {
        return false;
    }
}

/** Writes the NoCloud seed as an ISO 9660 volume labelled `cidata`. */
export function writeSeedIso(dir: string, seed: SeedFiles): string {
    const content = path.join(dir, "seed");
    fs.rmSync(content, { recursive: true, force: true });
    fs.mkdirSync(content, { recursive: true });
    fs.writeFileSync(path.join(content, "meta-data"), seed.metaData);
    fs.writeFileSync(path.join(content, "user-data"), seed.userData);
    if (seed.networkConfig) fs.writeFileSync(path.join(content, "network-config"), seed.networkConfig);
    for (const [name, data] of Object.entries(seed.extra ?? {})) fs.writeFileSync(path.join(content, name), data);
    const iso = path.join(dir, "seed.iso");
    execFileSync("genisoimage", ["-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock", content], { stdio: ["ignore", "ignore", "pipe"] });
    return iso;
}

export class QemuVm {
    constructor(public readonly spec: VmSpec) {}

    /** Everything the guest printed on its serial console (kernel, systemd, cloud-init). */
    get consoleLog(): string {
        return path.join(this.spec.dir, "console.log");
    }

    get overlay(): string {
        return path.join(this.spec.dir, "disk.qcow2");
    }

    /** Creates the overlay and the seed once; a later start reuses both (same disk, same instance). */
    prepare(): void {
        fs.mkdirSync(this.spec.dir, { recursive: true });
        if (!fs.existsSync(this.overlay)) {
            execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", this.spec.image.disk, this.overlay], { stdio: ["ignore", "ignore", "pipe"] });
        }
        writeSeedIso(this.spec.dir, this.spec.seed);
    }

    qemuArgs(): string[] {
        const { spec } = this;
        const nics = spec.nics.flatMap((nic, i) => {
            const id = `nic${i}`;
            const backend = nic.kind === "user" ? `user,id=${id}` : `tap,id=${id},ifname=${nic.ifname},script=no,downscript=no`;
            return ["-netdev", backend, "-device", `virtio-net-pci,netdev=${id},mac=${nic.mac},addr=0x${nic.pciSlot.toString(16)}`];
        });
        return [
            "-name", spec.name,
            "-machine", "pc", "-accel", `tcg,tb-size=${VM_DEFAULTS.tbSizeMb}`,
            "-m", String(spec.memoryMb ?? VM_DEFAULTS.memoryMb), "-smp", String(spec.cpus ?? VM_DEFAULTS.cpus),
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
            "-kernel", spec.image.kernel, "-initrd", spec.image.initrd,
            "-append", `root=/dev/vda rw console=ttyS0 ${spec.append ?? ""}`.trim(),
            "-drive", `file=${this.overlay},if=virtio,format=qcow2,discard=unmap`,
            "-drive", `file=${path.join(spec.dir, "seed.iso")},if=virtio,format=raw,readonly=on`,
            ...nics,
            "-chardev", `file,id=console,path=${this.consoleLog},append=on`, "-serial", "chardev:console",
            "-daemonize", "-pidfile", path.join(spec.dir, "qemu.pid"),
        ];
    }

    /**
     * Powers the VM on (prepare() first). Returns once QEMU runs; the guest
     * boots on its own. The command line is kept in the VM's directory, so
     * powerOn() can boot the same machine again from any process.
     */
    start(): void {
        const args = this.qemuArgs();
        fs.writeFileSync(path.join(this.spec.dir, ARGS_FILE), JSON.stringify(args));
        powerOn(this.spec.dir);
    }
}

const ARGS_FILE = "qemu-args.json";

/** Boots the VM whose directory this is, with the command line of its first start (same disk, same seed). */
export function powerOn(dir: string): void {
    const pidFile = path.join(dir, "qemu.pid");
    const pid = readPid(pidFile);
    if (pid !== undefined && alive(pid)) return;
    const args = JSON.parse(fs.readFileSync(path.join(dir, ARGS_FILE), "utf8")) as string[];
    // The serial console is a file QEMU appends to: earlier boots stay for the post-mortem.
    const result = spawnSync("nice", ["-n", "5", "qemu-system-x86_64", ...args], { encoding: "utf8" });
    if (result.status !== 0) throw new Error(`qemu in ${dir} failed (exit ${result.status}): ${result.stderr.trim()}`);
}

/** Pulls the plug: no shutdown, as a host failure would. Resolves when QEMU is gone. */
export async function powerOff(dir: string): Promise<boolean> {
    const pidFile = path.join(dir, "qemu.pid");
    const pid = readPid(pidFile);
    if (pid === undefined) return false;
    const wasRunning = alive(pid);
    if (wasRunning) process.kill(pid, "SIGKILL");
    for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
    fs.rmSync(pidFile, { force: true });
    return wasRunning;
}

/** Powers off every VM whose directory lies under `root` (a crashed run's leftovers included). */
export async function powerOffAll(root: string): Promise<string[]> {
    if (!fs.existsSync(root)) return [];
    const stopped: string[] = [];
    for (const entry of fs.readdirSync(root, { withFileTypes: true })) {
        if (entry.isDirectory() && (await powerOff(path.join(root, entry.name)))) stopped.push(entry.name);
    }
    return stopped;
}
