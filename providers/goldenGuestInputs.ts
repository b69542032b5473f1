/**
 * What a GoldenGuest is asked for: its inputs, the policy bounding its API
 * calls and task waits, what it records as observed, and the rules check()
 * holds the inputs to before any call is made.
 *
 * Captured by value into serialized providers: plain functions only.
 */
import { PveEndpoint, RetryPolicy } from "./pve/client";
import { containsUnknown } from "./unknowns";

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
export interface GoldenGuestInputs extends PveEndpoint {
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
        if (containsUnknown(value)) return;
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
    if (!containsUnknown(news.mountPoints)) {
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
    if (olds && !containsUnknown(news.rootfsSizeGiB) && typeof olds.rootfsSizeGiB === "number" && typeof news.rootfsSizeGiB === "number" &&
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
    if (!containsUnknown(policy)) {
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
