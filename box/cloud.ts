/**
 * The box cloud: the real program (index.ts, the stack's own config) under
 * Pulumi's mock runtime, where every resource registration is carried out
 * for real on this machine instead of answered with stand-ins:
 *
 * - linode.Instance -> a Debian 12 VM under QEMU given exactly the user-data
 *   Linode Metadata would hand it (inline, gzip, or an #include pointer that
 *   cloud-init fetches from MinIO itself); `ipv4s`/`ipAddress` are its
 *   address on the underlay, and its Linode Firewall is its nftables chain;
 * - the bucket and its scoped key -> MinIO (box/objectStore.ts);
 * - Debian's archive -> a caching apt proxy on the underlay (box/aptCache.ts)
 *   that the VMs' apt uses, so the nodes' own apt-get runs at the host's
 *   speed instead of through the emulated user-mode NIC;
 * - dynamic resources -> their serialized providers, run in a fresh process
 *   by the same host the tests use (tests/harness), created for real and
 *   deleted on teardown from the provider text kept in the box's state;
 * - random and tls -> real values, keys and certificates (box/material.ts).
 *
 * Like `pulumi up`, `up` prints progress and the stack outputs, and leaves
 * the "cloud" running; `down` deletes what `up` made, in reverse order.
 *
 * This file brings the box up, updates it and takes it down; each
 * registration is carried out by box/deployment.ts, which decides its step
 * as the engine does (box/steps.ts) and records it in the state file
 * (box/state.ts).
 */
import * as fs from "fs";
import * as path from "path";
import { NATS_SERVER_RELEASE } from "../lib/natsRelease";
import { previousNatsServerVersion } from "../tests/support/tools";
import { BoxAptCache } from "./aptCache";
import { makeBoxCa } from "./ca";
import { BoxDeployment } from "./deployment";
import { deleteDynamic } from "./dynamicResources";
import { imageArchiveHost } from "./image";
import { BoxTls } from "./material";
import { attachTap, createUnderlay, removeUnderlay, UNDERLAY } from "./network";
import { BoxObjectStore } from "./objectStore";
import { APT_CACHE_DIR, APT_CACHE_RUN_DIR, BOX_CACHE, logsDir, RUN_DIR } from "./paths";
import { boxConfig, boxMachineConfig, natsServerTarball } from "./stackConfig";
import { BoxState, BoxVm, readState, writeState } from "./state";
import { BoxStep, shortType } from "./steps";
import { boxSshKey } from "./ssh";
import { bootImageAt, powerOff, powerOffAll, powerOn } from "./vm";

export interface UpOptions {
    stack: string;
    /** Config values on top of the stack file (`key=value`, key with or without `meshstack:`). */
    overrides: Record<string, string>;
    imageDir: string;
    log: (line: string) => void;
}

export interface UpdateOptions {
    /** Config values on top of those the box was brought up with, as `pulumi config set` before the next `up`. */
    overrides: Record<string, string>;
    /** Logical names replaced whatever their inputs say, as `pulumi up --replace` does. */
    replace: string[];
    log: (line: string) => void;
}

/** The first `up`: underlay, MinIO and its mirror, then every resource the program declares. Resolves with the state; on failure the caller tears down. */
export async function up(options: UpOptions): Promise<BoxState> {
    fs.mkdirSync(RUN_DIR, { recursive: true, mode: 0o700 });
    bootImageAt(options.imageDir);
    const ca = makeBoxCa(new BoxTls(), path.join(RUN_DIR, "ca"));
    const sshKey = boxSshKey(BOX_CACHE);
    const store = new BoxObjectStore(path.join(RUN_DIR, "minio"), UNDERLAY.hostAddress, ca.caCertFile);
    const state: BoxState = {
        stack: options.stack, startedAt: new Date().toISOString(), imageDir: options.imageDir, caCertFile: ca.caCertFile,
        sshPrivateKey: sshKey.privateKey, minio: { url: store.url, endpointHost: store.endpointHost }, overrides: { ...options.overrides }, resources: [], vms: [],
    };
    const deployment = new BoxDeployment(state, options.log);
    createUnderlay();
    deployment.log(`underlay ${UNDERLAY.prefix}.0/${UNDERLAY.prefixLength} up (namespace ${UNDERLAY.namespace}, host ${UNDERLAY.hostAddress})`);
    fs.mkdirSync(path.join(RUN_DIR, "minio"), { recursive: true });
    await store.start(ca.issue);
    deployment.log(`MinIO at ${store.url}`);
    const archive = imageArchiveHost(options.imageDir);
    if (archive) {
        const aptCache = new BoxAptCache(APT_CACHE_RUN_DIR, UNDERLAY.hostAddress, APT_CACHE_DIR, [archive]);
        await aptCache.start();
        state.aptProxy = aptCache.proxyUrl;
        deployment.log(`apt cache for http://${archive} at ${aptCache.proxyUrl} (files in ${APT_CACHE_DIR})`);
    } else deployment.log("the image's Debian mirror is not plain http: the VMs' apt goes to it directly, over the user-mode NIC");
    // Both releases setup built: an update may move the nodes from one to the other.
    for (const version of [NATS_SERVER_RELEASE.version, previousNatsServerVersion()]) {
        const tarball = natsServerTarball(version);
        store.publishToMirror(`nats-server/${version}/${path.basename(tarball)}`, tarball);
    }
    const config = boxConfig(options.stack, { ...boxMachineConfig(store.url, sshKey.publicKey, options.overrides.natsServerVersion), ...options.overrides });
    writeState(state);
    await deployment.run(config, new Set());
    return state;
}

/**
 * A later `pulumi up` against the running box: the stack's config with the
 * caller's changes, each resource left, updated in its own provider, or
 * replaced (a new VM; the old one powered off), and what the program no
 * longer declares deleted. Buckets, keys and firewalls cannot change under
 * running VMs here: a change to one fails the update, which leaves the box as
 * it is (changes already carried out included), for its logs. Resolves with
 * what happened to each resource.
 */
export async function update(options: UpdateOptions): Promise<{ state: BoxState; steps: Map<string, BoxStep> }> {
    const state = readState();
    if (!state?.outputs) throw new Error("no box is up (or its first up did not finish); npm run box brings one up");
    for (const name of options.replace) {
        if (!state.resources.some((r) => r.name === name)) throw new Error(`--replace ${name}: no such resource in the box; it has ${state.resources.map((r) => r.name).join(", ")}`);
    }
    state.overrides = { ...state.overrides, ...options.overrides };
    const deployment = new BoxDeployment(state, options.log);
    // New VMs of this update fetch their packages through it: started again if it has gone since the first up.
    const archive = imageArchiveHost(state.imageDir);
    if (state.aptProxy && archive && (await new BoxAptCache(APT_CACHE_RUN_DIR, UNDERLAY.hostAddress, APT_CACHE_DIR, [archive]).ensureRunning())) {
        deployment.log(`apt cache at ${state.aptProxy} started again`);
    }
    const config = boxConfig(state.stack, { ...boxMachineConfig(state.minio.url, boxSshKey(BOX_CACHE).publicKey, state.overrides.natsServerVersion), ...state.overrides });
    await deployment.run(config, new Set(options.replace));
    return { state, steps: deployment.steps };
}

/** Pulls a box VM's plug (chaos). */
export async function powerOffVm(vm: BoxVm): Promise<void> {
    await powerOff(vm.dir);
}

/** Boots a powered-off box VM again on its own disk, behind the same tap name and firewall chain. */
export function powerOnVm(vm: BoxVm): void {
    powerOn(vm.dir);
    attachTap(vm.tap);
}

/** Deletes everything a box run made, newest first; works on a crashed run's leftovers too. */
export async function down(log: (line: string) => void): Promise<void> {
    const state = readState();
    if (state) {
        for (const resource of [...state.resources].reverse()) {
            if (!resource.serializedProvider) continue;
            const failed = await deleteDynamic(resource, state.caCertFile);
            log(`- ${shortType(resource.type)} ${resource.name}${failed ? `: delete failed (${failed}); removed with the box anyway` : " deleted"}`);
        }
        const consoles = path.join(logsDir(state.stack), "console");
        fs.mkdirSync(consoles, { recursive: true });
        for (const vm of state.vms) {
            const file = path.join(vm.dir, "console.log");
            if (fs.existsSync(file)) fs.copyFileSync(file, path.join(consoles, `${vm.retired ? `${vm.name}-${vm.index}-retired` : vm.name}.log`));
        }
        // Its hits and misses say how much of the VMs' apt work came from the cache.
        const aptLog = BoxAptCache.logFile(APT_CACHE_RUN_DIR);
        if (fs.existsSync(aptLog)) fs.copyFileSync(aptLog, path.join(logsDir(state.stack), "apt-cache.log"));
    }
    const stopped = await powerOffAll(path.join(RUN_DIR, "vms"));
    if (stopped.length) log(`- VMs powered off: ${stopped.join(", ")}`);
    if (BoxObjectStore.stop(path.join(RUN_DIR, "minio"))) log("- MinIO stopped");
    if (BoxAptCache.stop(APT_CACHE_RUN_DIR)) log(`- apt cache stopped (its files stay in ${APT_CACHE_DIR})`);
    removeUnderlay();
    fs.rmSync(RUN_DIR, { recursive: true, force: true });
    log("- box removed (underlay, VMs, MinIO, apt cache process, state)");
}
