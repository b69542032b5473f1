/**
 * The node's containers and the archives on its backup storage, as
 * pve-container keeps them:
 *
 * - Restore keeps the archived MAC and hostname unless the call overrides
 *   them; `unique=1` gives every netN a fresh MAC. The config file exists
 *   at once, locked `create` until the restore task ends.
 * - Config writes take the config lock: while a resize task holds it they
 *   wait (10 s, scaled) and fail with the exact 500
 *   `can't lock file '/run/lock/lxc/pve-config-<vmid>.lock' - got timeout`;
 *   a set `lock:` value refuses writes ("CT is locked (<lock>)"); a stale
 *   `digest` is a conflict.
 * - Every call checks the privilege pve-container's API checks.
 */
import * as crypto from "crypto";
import { setTimeout as sleep } from "timers/promises";
import { ApiError, PveToken, requirePrivilege } from "./access";
import { configText, formatSize, parsePropertyString, parseSize, printPropertyString, randomMac, typedConfig } from "./codecs";
import { PveTasks } from "./tasks";
import { PveTimings } from "./timings";

interface PveInterface {
    name: string;
    hwaddr: string;
    "hardware-address": string;
    "ip-addresses": { "ip-address": string; "ip-address-type": string; prefix: number }[];
    inet?: string;
    inet6?: string;
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

export class PveGuests {
    private readonly guests = new Map<number, Guest>();
    private readonly archives = new Map<string, Archive>();

    constructor(
        private readonly node: string,
        private readonly storages: string[],
        private readonly timings: PveTimings,
        private readonly tasks: PveTasks,
    ) {}

    /** Puts an archive on backup storage, with the config vzdump would have stored in it. */
    addArchive(volid: string, config: Record<string, string>): void {
        this.archives.set(volid, { config: { ...config } });
    }

    /** The live config of a container, or undefined. */
    config(vmid: number): Record<string, string> | undefined {
        const guest = this.guests.get(vmid);
        return guest ? { ...guest.config } : undefined;
    }

    /** GET .../config: the config typed by the schema, with its digest. */
    readConfig(vmid: number, token: PveToken): Record<string, string | number> {
        requirePrivilege(token, `/vms/${vmid}`, "VM.Audit");
        const guest = this.guest(vmid);
        return { ...typedConfig(guest.config), digest: this.digest(guest) };
    }

    /** GET .../status/current. */
    status(vmid: number, token: PveToken): Record<string, unknown> {
        requirePrivilege(token, `/vms/${vmid}`, "VM.Audit");
        const guest = this.guest(vmid);
        // ha is always there (managed 0 for a CT outside HA); type is not part of this reply.
        return {
            vmid, status: guest.running ? "running" : "stopped", ha: { managed: 0 },
            ...(guest.config.hostname ? { name: guest.config.hostname } : {}), ...(guest.config.lock ? { lock: guest.config.lock } : {}),
        };
    }

    /** GET .../interfaces: only a running container has any. */
    readInterfaces(vmid: number, token: PveToken): PveInterface[] {
        requirePrivilege(token, `/vms/${vmid}`, "VM.Audit");
        const guest = this.guest(vmid);
        if (!guest.running) throw new ApiError(500, `CT ${vmid} not running`);
        return this.interfaces(guest);
    }

    /** GET vzdump/extractconfig: the archived config file's text. */
    extractConfig(params: Record<string, string>, token: PveToken): string {
        const volume = params.volume;
        if (!volume) throw new ApiError(400, "Parameter verification failed.", { volume: "property is missing and it is not optional" });
        requirePrivilege(token, `/storage/${volume.split(":")[0]}`, "Datastore.Audit");
        const archive = this.archives.get(volume);
        if (!archive) throw new ApiError(500, `volume '${volume}' does not exist`);
        return configText(archive.config);
    }

    restore(params: Record<string, string>, token: PveToken): string {
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
        requirePrivilege(token, `/vms/${vmid}`, "VM.Allocate");
        const storage = params.storage ?? "local";
        if (!this.storages.includes(storage)) throw new ApiError(500, `storage '${storage}' does not exist`);
        requirePrivilege(token, `/storage/${storage}`, "Datastore.AllocateSpace");
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
        return this.tasks.dispatch("vzrestore", vmid, token, this.timings.restoreMs, [
            `restoring '${params.ostemplate}' now..`, "extracting archive", "Total bytes read: 312156160 (298MiB, 95MiB/s)",
            ...(params.unique === "1" ? ["assigning unique random ethernet addresses"] : []),
        ], () => {
            guest.config = restored;
            delete guest.config.lock;
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

    async updateConfig(vmid: number, params: Record<string, string>, token: PveToken): Promise<null> {
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
            if (/^(mp\d+|rootfs)$/.test(key)) requirePrivilege(token, acl, "VM.Config.Disk");
            else if (/^net\d+$/.test(key)) requirePrivilege(token, acl, "VM.Config.Network");
            else requirePrivilege(token, acl, "VM.Config.Options");
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
                    requirePrivilege(token, `/storage/${m[1]}`, "Datastore.AllocateSpace");
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

    async resize(vmid: number, params: Record<string, string>, token: PveToken): Promise<string> {
        const errors: Record<string, string> = {};
        if (!/^(rootfs|mp\d+)$/.test(params.disk ?? "")) errors.disk = "value 'rootfs' or 'mpN' required";
        const m = /^(\+?)(\d+(?:\.\d+)?[KMGT]?)$/.exec(params.size ?? "");
        if (!m) errors.size = "value does not match the regex pattern";
        if (Object.keys(errors).length) throw new ApiError(400, "Parameter verification failed.", errors);
        requirePrivilege(token, `/vms/${vmid}`, "VM.Config.Disk");
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
            const upid = this.tasks.dispatch("resize", vmid, token, this.timings.resizeMs, [
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

    start(vmid: number, token: PveToken): string {
        requirePrivilege(token, `/vms/${vmid}`, "VM.PowerMgmt");
        const guest = this.guest(vmid);
        if (guest.config.lock) throw new ApiError(500, `CT is locked (${guest.config.lock})`);
        if (guest.running) throw new ApiError(500, `CT ${vmid} already running`);
        return this.tasks.dispatch("vzstart", vmid, token, this.timings.startMs, [`starting CT ${vmid}`], () => {
            guest.running = true;
            guest.dhcpAt = Date.now() + this.timings.dhcpMs;
        });
    }

    stop(vmid: number, token: PveToken): string {
        requirePrivilege(token, `/vms/${vmid}`, "VM.PowerMgmt");
        const guest = this.guest(vmid);
        if (!guest.running) throw new ApiError(500, `CT ${vmid} not running`);
        return this.tasks.dispatch("vzstop", vmid, token, this.timings.stopMs, [`stopping CT ${vmid}`], () => {
            guest.running = false;
        });
    }

    destroy(vmid: number, token: PveToken): string {
        requirePrivilege(token, `/vms/${vmid}`, "VM.Allocate");
        const guest = this.guest(vmid);
        if (guest.running) throw new ApiError(500, `CT ${vmid} is running - destroy failed`);
        if (guest.config.lock) throw new ApiError(500, `CT is locked (${guest.config.lock})`);
        return this.tasks.dispatch("vzdestroy", vmid, token, this.timings.destroyMs, [`destroying CT ${vmid}`], () => {
            this.guests.delete(vmid);
        });
    }

    private guest(vmid: number): Guest {
        const guest = this.guests.get(vmid);
        if (!guest) throw new ApiError(500, `Configuration file 'nodes/${this.node}/lxc/${vmid}.conf' does not exist`);
        return guest;
    }

    private digest(guest: Guest): string {
        return crypto.createHash("sha1").update(configText(guest.config)).digest("hex");
    }
}
