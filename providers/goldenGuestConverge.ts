/**
 * Bringing one Proxmox VE container to what its GoldenGuest inputs say:
 * restore it from the golden archive, then converge it (its own MACs, its
 * hostname, disk sizes, mount points, start on boot, running), or destroy
 * it. What a restore leaves undone, and so this does, is in
 * providers/goldenGuest.ts.
 *
 * One guest's calls are strictly sequential and every task is waited for
 * before the next call: a resize task holds the config lock while it grows
 * the filesystem, and a config write sent meanwhile fails after 10 s with
 * "got timeout" (retried by the client as a safety net).
 *
 * Captured by value into serialized providers: plain functions only.
 */
import { GOLDEN_PREPARED_MARKER } from "../cloudinit/goldenPrepare";
import { formatSeconds } from "../lib/duration";
import { GoldenGuestInputs, GoldenGuestObserved, GoldenGuestOutputs, GoldenGuestPolicy, GoldenMountPoint } from "./goldenGuestInputs";
import { describeCall, isMissing, isTransient, NO_WORKER, PveCaller, pveCall, PveConnection, pveFailure, PveFailure, backoffMs, sleep } from "./pve/client";
import { macsOf, mountPointsOf, parseArchivedConfig, parseProperties, readLxcConfig, sizeGiB } from "./pve/lxcConfig";
import { TaskWaitPolicy, waitTask } from "./pve/tasks";

/** One guest's calls: the client's caller, named after the guest, with the guest's policy. */
export interface Scope extends PveCaller {
    policy: GoldenGuestPolicy;
    vmid: number;
    hostname: string;
}

function connectionOf(inputs: GoldenGuestInputs): PveConnection {
    return {
        endpoint: inputs.endpoint.replace(/\/$/, ""), node: inputs.node, tokenId: inputs.tokenId, tokenSecret: inputs.tokenSecret,
        caBundlePem: inputs.caBundlePem, tlsFingerprint: inputs.tlsFingerprint, requestTimeoutMs: inputs.policy.requestTimeoutMs,
    };
}

export function scopeOf(inputs: GoldenGuestInputs): Scope {
    const conn = connectionOf(inputs);
    return {
        conn, retry: inputs.policy.retry, policy: inputs.policy, vmid: inputs.vmid, hostname: inputs.hostname,
        name: `GoldenGuest ${inputs.hostname} (CT ${inputs.vmid} on node ${conn.node})`,
        shortName: `GoldenGuest ${inputs.hostname} (CT ${inputs.vmid})`,
    };
}

type TaskType = keyof GoldenGuestPolicy["taskTimeoutMs"];

function taskWait(scope: Scope, type: TaskType): TaskWaitPolicy {
    return { pollIntervalMs: scope.policy.taskPollIntervalMs, noSuchTaskGraceMs: scope.policy.noSuchTaskGraceMs, timeoutMs: scope.policy.taskTimeoutMs[type] };
}

function guestPath(scope: Scope, sub = ""): string {
    return `/nodes/${scope.conn.node}/lxc/${scope.vmid}${sub}`;
}

export async function observe(scope: Scope): Promise<GoldenGuestObserved & { digest: string; config: Record<string, string> }> {
    const reply = await pveCall(scope, "read config", "GET", guestPath(scope, "/config"));
    let parsed: ReturnType<typeof readLxcConfig>;
    try {
        parsed = readLxcConfig(reply);
    } catch (err) {
        throw pveFailure(`${describeCall(scope, "read config", "GET", guestPath(scope, "/config"))}: ${(err as Error).message}`);
    }
    const config = parsed.strings;
    const status = (await pveCall(scope, "read status", "GET", guestPath(scope, "/status/current"))) as { status: string };
    const running = status.status === "running";
    let ipv4 = "";
    if (running) ipv4 = await reportedIpv4(scope);
    return {
        hostname: config.hostname ?? "",
        macs: macsOf(config),
        rootfsSizeGiB: sizeGiB(parseProperties(config.rootfs, "volume").size),
        mountPoints: mountPointsOf(config),
        startOnBoot: parsed.onboot,
        running,
        ipv4,
        digest: config.digest,
        config,
    };
}

/** The first non-loopback IPv4 the API reports; "" when none or when the API has no interfaces endpoint. */
async function reportedIpv4(scope: Scope): Promise<string> {
    let list: { name: string; inet?: string }[];
    try {
        list = await pveCall(scope, "read interfaces", "GET", guestPath(scope, "/interfaces"));
    } catch (err) {
        const f = err as PveFailure;
        if (f.pveStatus === 501 || f.pveStatus === 400 || f.pveStatus === 500) return "";
        throw err;
    }
    const found = (list ?? []).find((i) => i.name !== "lo" && i.inet && !i.inet.startsWith("127."));
    return found?.inet?.split("/")[0] ?? "";
}

/** Refuses an archive that was not prepared (unless allowed) and returns the MACs it carries. */
async function inspectArchive(scope: Scope, inputs: GoldenGuestInputs): Promise<Record<string, string>> {
    const text = await pveCall(scope, "read archive config (extractconfig)", "GET", `/nodes/${scope.conn.node}/vzdump/extractconfig`, { volume: inputs.archive });
    const archived = parseArchivedConfig(text);
    if (!archived.description.includes(GOLDEN_PREPARED_MARKER)) {
        const why =
            `archive ${inputs.archive} was not prepared as a golden image: its description lacks "${GOLDEN_PREPARED_MARKER}". ` +
            "A restore regenerates neither SSH host keys nor /etc/machine-id, so every guest restored from an uncleaned archive shares " +
            "the golden's host keys and machine-id, and one cleaned without a first-boot key unit boots with ssh.service failed. " +
            "Build the archive with meshstack's golden image (meshstack:proxmoxGoldenTemplate), or, if you cleaned it yourself, " +
            "set meshstack:proxmoxAllowUnpreparedArchive to true.";
        if (!inputs.allowUnpreparedArchive) throw pveFailure(`${scope.shortName}: refusing to restore: ${why}`);
        console.log(`${scope.shortName}: restoring anyway (allowUnpreparedArchive): ${why}`);
    }
    return macsOf(archived.config);
}

/** Config writes go with the digest of the config just read, so a concurrent edit is a conflict, not a silent overwrite. */
async function writeConfig(scope: Scope, operation: string, params: Record<string, string | number>): Promise<void> {
    const { digest } = (await pveCall(scope, `${operation} (read digest)`, "GET", guestPath(scope, "/config"))) as { digest: string };
    await pveCall(scope, operation, "PUT", guestPath(scope, "/config"), { ...params, digest });
}

/** Gives every netN that kept an archived MAC (or shares one) a fresh one, then checks it took. */
async function ensureOwnMacs(scope: Scope, archiveMacs: Record<string, string>): Promise<void> {
    const archived = Object.values(archiveMacs).filter(Boolean);
    for (let round = 0; round < 2; round++) {
        const { config } = await observe(scope);
        const macs = macsOf(config);
        const stale = Object.entries(macs).filter(([, mac]) => !mac || archived.includes(mac)).map(([key]) => key);
        if (!stale.length) return;
        if (round === 1) {
            throw pveFailure(
                `${scope.name}: ${stale.join(", ")} still carry the archive's MAC ` +
                    `(${stale.map((k) => macs[k]).join(", ")}) after a reset; two guests of one golden would collide on the LAN`,
            );
        }
        // A netN written without hwaddr gets a fresh random MAC.
        const reset = Object.fromEntries(stale.map((key) => [key, config[key].split(",").filter((p) => !p.startsWith("hwaddr=")).join(",")]));
        console.log(`${scope.shortName}: ${stale.join(", ")} kept the archive's MAC; resetting`);
        await writeConfig(scope, "reset MAC", reset);
    }
}

async function ensureHostname(scope: Scope): Promise<void> {
    const { hostname } = await observe(scope);
    if (hostname === scope.hostname) return;
    await writeConfig(scope, "set hostname", { hostname: scope.hostname });
    const after = await observe(scope);
    if (after.hostname !== scope.hostname) {
        throw pveFailure(`${scope.shortName}: hostname is ${JSON.stringify(after.hostname)} after setting it`);
    }
}

async function ensureRootfsSize(scope: Scope, wantGiB: number): Promise<void> {
    if (wantGiB === 0) return;
    const { rootfsSizeGiB } = await observe(scope);
    if (rootfsSizeGiB >= wantGiB) return;
    const upid = await pveCall(scope, `resize rootfs to ${wantGiB}G`, "PUT", guestPath(scope, "/resize"), { disk: "rootfs", size: `${wantGiB}G` });
    await waitTask(scope, `resize rootfs to ${wantGiB}G`, upid, taskWait(scope, "resize"));
}

async function ensureMountPoints(scope: Scope, wanted: GoldenMountPoint[]): Promise<void> {
    for (const mp of wanted) {
        const { mountPoints } = await observe(scope);
        const present = Object.entries(mountPoints).find(([, m]) => m.path === mp.path);
        if (present) {
            if (present[1].sizeGiB < mp.sizeGiB) {
                const upid = await pveCall(scope, `resize ${present[0]} (${mp.path}) to ${mp.sizeGiB}G`, "PUT", guestPath(scope, "/resize"), { disk: present[0], size: `${mp.sizeGiB}G` });
                await waitTask(scope, `resize ${present[0]} (${mp.path})`, upid, taskWait(scope, "resize"));
            }
            continue;
        }
        let index = 0;
        while (mountPoints[`mp${index}`]) index++;
        await writeConfig(scope, `attach mp${index} at ${mp.path}`, { [`mp${index}`]: `${mp.storage}:${mp.sizeGiB},mp=${mp.path}` });
    }
}

async function ensureStartOnBoot(scope: Scope, want: boolean): Promise<void> {
    const { startOnBoot } = await observe(scope);
    if (startOnBoot !== want) await writeConfig(scope, `set onboot=${want ? 1 : 0}`, { onboot: want ? 1 : 0 });
}

async function ensureRunning(scope: Scope): Promise<GoldenGuestObserved> {
    const current = await observe(scope);
    if (!current.running) {
        const upid = await pveCall(scope, "start", "POST", guestPath(scope, "/status/start"));
        await waitTask(scope, "start", upid, taskWait(scope, "vzstart"));
    }
    const runningBy = Date.now() + scope.policy.runningTimeoutMs;
    for (;;) {
        const { status } = (await pveCall(scope, "read status", "GET", guestPath(scope, "/status/current"))) as { status: string };
        if (status === "running") break;
        if (Date.now() >= runningBy) {
            throw pveFailure(`${scope.name}: started, but status is ${status} after ${formatSeconds(scope.policy.runningTimeoutMs)}; see \`pct start ${scope.vmid} --debug\` on the node`);
        }
        await sleep(scope.policy.taskPollIntervalMs);
    }
    const ipv4By = Date.now() + scope.policy.ipv4TimeoutMs;
    for (;;) {
        const seen = await observe(scope);
        if (seen.ipv4 || Date.now() >= ipv4By) {
            if (!seen.ipv4) console.log(`${scope.shortName}: running; no IPv4 address reported within ${formatSeconds(scope.policy.ipv4TimeoutMs)}`);
            return strip(seen);
        }
        await sleep(scope.policy.taskPollIntervalMs);
    }
}

export function strip(seen: GoldenGuestObserved & { digest?: string; config?: unknown }): GoldenGuestObserved {
    const { digest: _digest, config: _config, ...observed } = seen;
    return observed;
}

/** Brings an existing guest to the inputs, one call after another. */
export async function converge(scope: Scope, inputs: GoldenGuestInputs, archiveMacs: Record<string, string>): Promise<GoldenGuestObserved> {
    await ensureOwnMacs(scope, archiveMacs);
    await ensureHostname(scope);
    await ensureRootfsSize(scope, inputs.rootfsSizeGiB);
    await ensureMountPoints(scope, inputs.mountPoints);
    await ensureStartOnBoot(scope, inputs.startOnBoot);
    return ensureRunning(scope);
}

/** Stops and destroys the guest; a guest already gone is success. */
export async function destroyGuest(scope: Scope): Promise<void> {
    let status: { status: string };
    try {
        status = await pveCall(scope, "read status", "GET", guestPath(scope, "/status/current"));
    } catch (err) {
        if (isMissing(err)) return;
        throw err;
    }
    if (status.status === "running") {
        const upid = await pveCall(scope, "stop", "POST", guestPath(scope, "/status/stop"));
        await waitTask(scope, "stop", upid, taskWait(scope, "vzstop"));
    }
    let upid: unknown;
    try {
        upid = await pveCall(scope, "destroy", "DELETE", guestPath(scope), { purge: 1, "destroy-unreferenced-disks": 1 });
    } catch (err) {
        if (isMissing(err)) return;
        throw err;
    }
    await waitTask(scope, "destroy", upid, taskWait(scope, "vzdestroy"));
}

/** Whether the CT's config holds nothing but `lock: create` (and its digest): what a restore leaves whose worker did not start. */
async function isLockedShell(scope: Scope): Promise<boolean> {
    let config: Record<string, unknown>;
    try {
        config = await pveCall(scope, "read config", "GET", guestPath(scope, "/config"));
    } catch (err) {
        if (isMissing(err)) return false;
        throw err;
    }
    return config?.lock === "create" && Object.keys(config).filter((key) => key !== "digest").length === 1;
}

/**
 * The restore call. pve-container checks that the VMID is free and writes
 * the new CT's config, locked `create`, before it forks the restore worker;
 * when that fork fails ("got no worker upid") the worker never ran and the
 * locked config stays. A blind retry would meet "CT <id> already exists",
 * and the API cannot remove it: destroy, config writes and a forced restore
 * all refuse a locked CT, and only root on the node can unlock it. So after
 * that answer the config is read first: no config, retry; the locked shell,
 * fail saying how to remove it.
 */
async function restore(scope: Scope, inputs: GoldenGuestInputs): Promise<unknown> {
    const retry = scope.policy.retry;
    for (let attempt = 1; ; attempt++) {
        try {
            return await pveCall(scope, "restore", "POST", `/nodes/${inputs.node}/lxc`, {
                vmid: inputs.vmid, ostemplate: inputs.archive, restore: 1, unique: 1, hostname: inputs.hostname, storage: inputs.storage,
            }, { retryNoWorker: false });
        } catch (err) {
            const f = err as PveFailure;
            if (!isTransient(f.pveStatus ?? 0, f.pveReason ?? "") || !NO_WORKER.test(f.pveReason ?? "")) throw err;
            if (await isLockedShell(scope)) {
                throw pveFailure(
                    `${f.message}: Proxmox VE wrote CT ${inputs.vmid}'s config, locked (create), before the restore worker failed to start, so the ` +
                        `worker never ran and the config stays. The API refuses to remove a locked container; on node ${inputs.node}, as root, run ` +
                        `\`pct unlock ${inputs.vmid} && pct destroy ${inputs.vmid}\`, then \`pulumi up\` again.`,
                    { status: f.pveStatus, reason: f.pveReason },
                );
            }
            if (attempt >= retry.attempts) throw err;
            const wait = backoffMs(retry, attempt - 1);
            console.log(`${f.message}; nothing was written, attempt ${attempt} of ${retry.attempts}, retrying in ${formatSeconds(wait)}`);
            await sleep(wait);
        }
    }
}

export async function createGuest(inputs: GoldenGuestInputs): Promise<GoldenGuestOutputs> {
    const scope = scopeOf(inputs);
    const archiveMacs = await inspectArchive(scope, inputs);
    console.log(`${scope.shortName}: restoring ${inputs.archive} to ${inputs.storage} on node ${inputs.node}`);
    const upid = await restore(scope, inputs);
    try {
        await waitTask(scope, "restore", upid, taskWait(scope, "vzrestore"));
        const observed = await converge(scope, inputs, archiveMacs);
        console.log(`${scope.shortName}: running, MACs ${Object.values(observed.macs).join(", ")}${observed.ipv4 ? `, IPv4 ${observed.ipv4}` : ""}`);
        return { ...inputs, archiveMacs, observed };
    } catch (err) {
        // Nothing half-made stays behind: the next `up` restores afresh instead of meeting "already exists".
        try {
            await destroyGuest(scope);
        } catch (cleanup) {
            (err as Error).message += `\n(cleanup of the half-made CT ${inputs.vmid} failed too: ${(cleanup as Error).message}; remove it with \`pct destroy ${inputs.vmid}\`)`;
        }
        throw err;
    }
}
