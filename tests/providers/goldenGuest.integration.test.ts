/**
 * The GoldenGuest provider in its serialized form, in a fresh provider-host
 * process, against the Proxmox VE API emulator over HTTPS, or a real host
 * (see tests/support/pve/target.ts).
 *
 * Two groups:
 * - "against the Proxmox VE API": every test runs unchanged against a real
 *   host; it changes guests only through the API. Checks of the emulator's
 *   own records (requests, config) are extra, under `if (target.emulator)`.
 * - "[emulator-only: fault hooks]": needs the emulator's fault plans
 *   (failRequests, failTasks, failForks), so it always starts an emulator,
 *   in CI and when MESHSTACK_PVE_ENDPOINT names a real host: it injects what
 *   a real host does only by chance.
 */
import * as assert from "assert";
import { GoldenGuest } from "../../providers/goldenGuest";
import { GoldenGuestInputs, GoldenGuestOutputs, GoldenGuestPolicy } from "../../providers/goldenGuestInputs";
import { UNKNOWN } from "../../providers/unknowns";
import { captureDynamicResource, CapturedDynamicResource, ProviderHost } from "../harness/dynamicProviders";
import { PveEmulator } from "../support/pve/emulator";
import { EMULATED_ARCHIVE_HOSTNAME, EMULATED_ARCHIVE_MAC, pveApi, PveTarget, pveWaitTask, startPveEmulator, startPveTarget } from "../support/pve/target";

/** Short waits for the emulator's scaled time; a real host gets the provider's defaults. */
const FAST_POLICY: GoldenGuestPolicy = {
    requestTimeoutMs: 10_000,
    retry: { attempts: 4, initialDelayMs: 50, multiplier: 2, maxDelayMs: 400, jitter: 0.2 },
    taskPollIntervalMs: 50,
    noSuchTaskGraceMs: 3_000,
    taskTimeoutMs: { vzrestore: 15_000, resize: 15_000, vzstart: 15_000, vzstop: 15_000, vzdestroy: 15_000 },
    runningTimeoutMs: 5_000,
    ipv4TimeoutMs: 5_000,
};

/**
 * Scaled to 1/20: a 150 ms auth delay, a 500 ms lock wait, a resize task of
 * 1 s that outlasts it, and new tasks unknown for 200 ms (four polls).
 */
const EMULATOR_OPTIONS = { timeScale: 0.05, timings: { resizeMs: 20_000, taskInvisibleMs: 4_000 } };

async function capture(target: PveTarget): Promise<CapturedDynamicResource> {
    return captureDynamicResource(
        () =>
            new GoldenGuest("probe", {
                endpoint: target.endpoint, node: target.node, tokenId: target.tokenId, tokenSecret: target.tokenSecret,
                caBundlePem: target.caBundlePem, tlsFingerprint: target.tlsFingerprint, storage: target.storage, archive: target.archive,
                vmid: target.vmidBase, hostname: "probe", policy: target.emulator ? FAST_POLICY : undefined,
            }),
    );
}

function inputsFor(captured: CapturedDynamicResource, overrides: Partial<GoldenGuestInputs>): GoldenGuestInputs {
    return { ...(captured.inputs as GoldenGuestInputs), ...overrides };
}

describe("GoldenGuest provider (serialized, fresh host process) against the Proxmox VE API", function () {
    this.timeout(120_000);
    let target: PveTarget;
    let captured: CapturedDynamicResource;
    let host: ProviderHost;
    const made: { id: string; outs: GoldenGuestOutputs }[] = [];

    before(async () => {
        target = await startPveTarget(EMULATOR_OPTIONS);
        captured = await capture(target);
        host = await ProviderHost.start(captured.serializedProvider);
    });

    after(async () => {
        for (const guest of made) await host.delete(guest.id, guest.outs).catch(() => undefined);
        await host?.close();
        await target?.stop();
    });

    async function create(overrides: Partial<GoldenGuestInputs>): Promise<{ id: string; outs: GoldenGuestOutputs }> {
        const result = await host.checkAndCreate(inputsFor(captured, overrides));
        made.push(result);
        return result;
    }

    it("takes the token secret as a secret input and keeps it secret in state", () => {
        assert.ok(captured.secretInputs.includes("tokenSecret"));
    });

    it("two guests from one golden get distinct MACs, both unlike the archive's, and the requested hostnames", async () => {
        const a = await create({ vmid: target.vmidBase, hostname: "web-a" });
        const b = await create({ vmid: target.vmidBase + 1, hostname: "web-b" });
        const macA = a.outs.observed.macs.net0;
        const macB = b.outs.observed.macs.net0;
        assert.match(macA, /^([0-9A-F]{2}:){5}[0-9A-F]{2}$/);
        assert.notStrictEqual(macA, macB);
        for (const guest of [a, b]) {
            assert.notStrictEqual(guest.outs.observed.macs.net0, guest.outs.archiveMacs.net0);
            assert.strictEqual(guest.outs.observed.running, true);
        }
        assert.deepStrictEqual([a.outs.observed.hostname, b.outs.observed.hostname], ["web-a", "web-b"]);
        if (target.emulator) {
            assert.strictEqual(a.outs.archiveMacs.net0, EMULATED_ARCHIVE_MAC);
            assert.strictEqual(target.emulator.guestConfig(target.vmidBase)!.hostname, "web-a");
            assert.notStrictEqual(target.emulator.guestConfig(target.vmidBase)!.hostname, EMULATED_ARCHIVE_HOSTNAME);
            assert.match(a.outs.observed.ipv4, /^10\.77\./);
            assert.strictEqual(target.emulator.maxConcurrentPerGuest, 1, "one guest's calls must be strictly sequential");
        }
    });

    it("a resize followed at once by a mount-point attach succeeds: the resize task is waited for", async () => {
        const { outs } = await create({ vmid: target.vmidBase + 2, hostname: "data-1", rootfsSizeGiB: 12, mountPoints: [{ path: "/srv/data", sizeGiB: 4, storage: target.storage }] });
        assert.strictEqual(outs.observed.rootfsSizeGiB, 12);
        assert.deepStrictEqual(Object.values(outs.observed.mountPoints), [{ path: "/srv/data", sizeGiB: 4 }]);
        if (target.emulator) {
            const calls = target.emulator.requests.filter((r) => r.vmid === target.vmidBase + 2);
            const resize = calls.findIndex((r) => r.method === "PUT" && r.path.endsWith("/resize"));
            const attach = calls.findIndex((r, i) => i > resize && r.method === "PUT" && r.path.endsWith("/config"));
            assert.ok(resize >= 0 && attach > resize, "resize, then the attach");
            assert.ok(calls.slice(resize, attach).some((r) => r.path.includes("/tasks/")), "the resize task was polled before the attach");
            assert.deepStrictEqual(calls.filter((r) => r.status >= 500), [], "no lock timeout was needed");
        }
    });

    it("delete stops and destroys a guest; a second delete of the missing guest succeeds, a read reports it gone", async () => {
        const guest = await create({ vmid: target.vmidBase + 3, hostname: "gone" });
        await host.delete(guest.id, guest.outs);
        if (target.emulator) assert.strictEqual(target.emulator.guestConfig(target.vmidBase + 3), undefined);
        await host.delete(guest.id, guest.outs);
        // A refresh of a guest deleted by hand drops it from state (empty id) instead of failing.
        assert.strictEqual((await host.read(guest.id, guest.outs)).id, "");
    });

    it("a bad token fails fast with an authorization error, no retries", async () => {
        const started = Date.now();
        const before = target.emulator?.requests.length ?? 0;
        await assert.rejects(
            host.checkAndCreate(inputsFor(captured, { vmid: target.vmidBase + 4, hostname: "nope", tokenSecret: "00000000-0000-4000-8000-000000000000" })),
            (err: Error) => /HTTP 401/.test(err.message) && /authorization failed/.test(err.message) && /CT 9105|extractconfig/.test(err.message),
        );
        if (target.emulator) {
            assert.strictEqual(target.emulator.requests.length - before, 1, "one request, no retry");
            assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
        }
    });

    it("read reports drift, diff turns it into an in-place update, update repairs it and returns the full outputs", async () => {
        const vmid = target.vmidBase + 5;
        const guest = await create({ vmid, hostname: "drifty", rootfsSizeGiB: 10 });
        const inputs = inputsFor(captured, { vmid, hostname: "drifty", rootfsSizeGiB: 10 });
        // Drift made through the API, as an operator would, so the test runs on a real host too.
        await pveApi(target, "PUT", `/nodes/${target.node}/lxc/${vmid}/config`, { hostname: "renamed-by-hand" });
        await pveWaitTask(target, await pveApi(target, "POST", `/nodes/${target.node}/lxc/${vmid}/status/stop`));
        const read = await host.read(guest.id, guest.outs);
        assert.strictEqual(read.props.observed.hostname, "renamed-by-hand");
        assert.strictEqual(read.props.observed.running, false);
        const before = host.logs.length;
        const diff = await host.diff(guest.id, read.props, inputs);
        assert.deepStrictEqual([diff.changes, diff.replaces], [true, []]);
        assert.match(host.logs.slice(before).join("\n"), /drifted: hostname: hostname is "renamed-by-hand", wanted "drifty"; observed.running: not running/);
        const updated = await host.update(guest.id, read.props, inputs);
        assert.strictEqual(updated.outs.observed.hostname, "drifty");
        assert.strictEqual(updated.outs.observed.running, true);
        for (const field of ["endpoint", "vmid", "archive", "archiveMacs", "tokenSecret", "policy"]) assert.ok(updated.outs[field] !== undefined, `update output lacks ${field}`);
        assert.strictEqual((await host.diff(guest.id, updated.outs, inputs)).changes, false);
    });

    it("hostname and size change in place (size grows), a new archive replaces, a smaller size is refused", async () => {
        const vmid = target.vmidBase + 6;
        const guest = await create({ vmid, hostname: "grow", rootfsSizeGiB: 10 });
        const bigger = inputsFor(captured, { vmid, hostname: "grown", rootfsSizeGiB: 14 });
        assert.deepStrictEqual((await host.diff(guest.id, guest.outs, bigger)).replaces, []);
        const updated = await host.update(guest.id, guest.outs, bigger);
        assert.deepStrictEqual([updated.outs.observed.hostname, updated.outs.observed.rootfsSizeGiB], ["grown", 14]);
        const otherArchive = { ...bigger, archive: "local:backup/vzdump-lxc-9000-2026_07_01-00_00_00.tar.zst" };
        assert.deepStrictEqual((await host.diff(guest.id, updated.outs, otherArchive)).replaces, ["archive"]);
        const smaller = await host.check(bigger, { ...bigger, rootfsSizeGiB: 8 });
        assert.deepStrictEqual(smaller.failures?.map((f) => f.property), ["rootfsSizeGiB"]);
        made.push({ id: guest.id, outs: updated.outs });
    });

    it("startOnBoot: true converges: the node answers onboot 1, and the next diff sees no change", async () => {
        const vmid = target.vmidBase + 8;
        const guest = await create({ vmid, hostname: "boots", startOnBoot: true });
        assert.strictEqual(guest.outs.observed.startOnBoot, true);
        const read = await host.read(guest.id, guest.outs);
        const diff = await host.diff(guest.id, read.props, inputsFor(captured, { vmid, hostname: "boots", startOnBoot: true }));
        assert.strictEqual(diff.changes, false);
    });

    it("preview: check accepts unknown inputs and diff reports what they may change", async () => {
        const unknownArchive = inputsFor(captured, { archive: UNKNOWN, hostname: UNKNOWN, vmid: target.vmidBase + 7 });
        const checked = await host.check({}, unknownArchive);
        assert.deepStrictEqual(checked.failures ?? [], []);
        const known = inputsFor(captured, { vmid: target.vmidBase + 7, hostname: "known" });
        const outs = { ...known, archiveMacs: { net0: EMULATED_ARCHIVE_MAC }, observed: { hostname: "known", macs: { net0: "BC:24:11:00:00:01" }, rootfsSizeGiB: 8, mountPoints: {}, startOnBoot: false, running: true, ipv4: "" } };
        const diff = await host.diff("x", outs, unknownArchive);
        assert.strictEqual(diff.changes, true);
        assert.deepStrictEqual(diff.replaces, ["archive"]);
        const stillBad = await host.check({}, { ...unknownArchive, vmid: 5 });
        assert.deepStrictEqual(stillBad.failures?.map((f) => f.property), ["vmid"]);
    });
});

describe("GoldenGuest provider under Proxmox VE faults [emulator-only: fault hooks]", function () {
    this.timeout(120_000);
    let target: PveTarget;
    let emulator: PveEmulator;
    let captured: CapturedDynamicResource;
    let host: ProviderHost;
    let vmid = 9200;

    before(async () => {
        target = await startPveEmulator(EMULATOR_OPTIONS);
        emulator = target.emulator!;
        emulator.addArchive("local:backup/vzdump-lxc-9001-unprepared.tar.zst", { hostname: "hand-made", rootfs: "local-lvm:vm-9001-disk-0,size=8G", net0: `name=eth0,bridge=vmbr0,hwaddr=${EMULATED_ARCHIVE_MAC},ip=dhcp` });
        captured = await capture(target);
        host = await ProviderHost.start(captured.serializedProvider);
    });
    afterEach(() => emulator.clearFaults());
    after(async () => {
        await host?.close();
        await target?.stop();
    });

    const next = (overrides: Partial<GoldenGuestInputs> = {}) => inputsFor(captured, { vmid: ++vmid, hostname: `g-${vmid}`, ...overrides });
    const lockTimeout = (id: number) => `can't lock file '/run/lock/lxc/pve-config-${id}.lock' - got timeout`;

    it("retries injected transient 500s (lock timeout, no worker upid) and succeeds", async () => {
        const inputs = next({ mountPoints: [{ path: "/srv", sizeGiB: 2, storage: "local-lvm" }] });
        emulator.failRequests({ method: "PUT", path: /\/config$/, status: 500, message: lockTimeout(inputs.vmid), times: 2 });
        emulator.failRequests({ method: "POST", path: /\/status\/start$/, status: 500, message: "got no worker upid - start worker failed", times: 1 });
        const before = host.logs.length;
        const { outs } = await host.checkAndCreate(inputs);
        assert.strictEqual(outs.observed.running, true);
        assert.deepStrictEqual(Object.values(outs.observed.mountPoints).map((m) => (m as { path: string }).path), ["/srv"]);
        const retried = host.logs.slice(before).filter((l) => /transient, attempt \d of 4, retrying/.test(l));
        assert.strictEqual(retried.length, 3, retried.join("\n"));
    });

    it("a restore whose worker did not start is not retried into its own locked leftover; the error says how to remove it", async () => {
        const inputs = next();
        emulator.failForks({ type: "vzrestore", times: 1 });
        await assert.rejects(host.checkAndCreate(inputs), (err: Error) => {
            assert.match(err.message, /restore: POST .* failed: HTTP 500 got no worker upid - start worker failed: Proxmox VE wrote CT \d+'s config, locked \(create\)/);
            assert.match(err.message, new RegExp(`on node pve, as root, run \`pct unlock ${inputs.vmid} && pct destroy ${inputs.vmid}\``));
            return true;
        });
        assert.strictEqual(emulator.requests.filter((r) => r.method === "POST" && r.path === "/nodes/pve/lxc" && r.vmid === inputs.vmid).length, 1, "no blind retry");
    });

    it("a restore answered \"got no worker upid\" before anything was written is retried and succeeds", async () => {
        const inputs = next();
        emulator.failRequests({ method: "POST", path: /^\/nodes\/pve\/lxc$/, status: 500, message: "got no worker upid - start worker failed", times: 1 });
        const { outs } = await host.checkAndCreate(inputs);
        assert.strictEqual(outs.observed.running, true);
        assert.strictEqual(emulator.requests.filter((r) => r.method === "POST" && r.path === "/nodes/pve/lxc" && r.vmid === inputs.vmid).length, 2);
    });

    it("a permanent transient-looking 500 fails after the retry bound with a clear error, leaving nothing behind", async () => {
        const inputs = next();
        emulator.failRequests({ method: "POST", path: /\/status\/start$/, status: 500, message: "got no worker upid - start worker failed", times: Infinity });
        await assert.rejects(host.checkAndCreate(inputs), (err: Error) => {
            assert.match(err.message, new RegExp(`GoldenGuest g-${inputs.vmid} \\(CT ${inputs.vmid} on node pve\\): start: POST https://127\\.0\\.0\\.1:\\d+/api2/json/nodes/pve/lxc/${inputs.vmid}/status/start failed`));
            assert.match(err.message, /HTTP 500 got no worker upid - start worker failed; still failing after 4 attempts over [0-9.]+s \(retry bound reached\)/);
            return true;
        });
        assert.strictEqual(emulator.requests.filter((r) => r.path.endsWith(`${inputs.vmid}/status/start`)).length, 4);
        assert.strictEqual(emulator.guestConfig(inputs.vmid), undefined, "the half-made guest is destroyed");
    });

    it("any other error fails at once, without retries", async () => {
        const inputs = next();
        emulator.failRequests({ method: "PUT", path: /\/config$/, status: 500, message: "unable to parse value of 'mp0'", times: Infinity });
        await assert.rejects(host.checkAndCreate({ ...inputs, mountPoints: [{ path: "/x", sizeGiB: 1, storage: "local-lvm" }] }), /attach mp0 at \/x: PUT .* failed: HTTP 500 unable to parse value of 'mp0'$/m);
        assert.strictEqual(emulator.requests.filter((r) => r.vmid === inputs.vmid && r.method === "PUT" && r.path.endsWith("/config")).length, 1);
    });

    it("a failed task surfaces its exit status and the tail of its log", async () => {
        const inputs = next();
        emulator.failTasks({
            type: "vzstart", exitstatus: `startup for container '${inputs.vmid}' failed`, times: 1,
            log: ["run_buffer: 322 Script exited with status 32", "lxc_init: 844 Failed to run lxc.hook.pre-start for container \"" + inputs.vmid + "\""],
        });
        await assert.rejects(host.checkAndCreate(inputs), (err: Error) => {
            assert.match(err.message, new RegExp(`start failed: task UPID:pve:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzstart:${inputs.vmid}:meshstack@pve!deploy: ended with exit status "startup for container '${inputs.vmid}' failed"`));
            assert.match(err.message, /Script exited with status 32/);
            assert.match(err.message, /TASK ERROR: startup for container/);
            return true;
        });
    });

    it("a task ending in WARNINGS counts as success", async () => {
        const inputs = next();
        emulator.failTasks({ type: "vzrestore", exitstatus: "WARNINGS: 1", times: 1, log: ["WARN: unsupported feature 'fuse' left out of the restore"] });
        const { outs } = await host.checkAndCreate(inputs);
        assert.strictEqual(outs.observed.running, true);
        assert.ok(emulator.taskList().some((t) => t.exitstatus === "WARNINGS: 1"));
    });

    it("keeps polling through 400 \"no such task\" right after dispatch", async () => {
        const inputs = next();
        await host.checkAndCreate(inputs);
        const early = emulator.requests.filter((r) => r.path.includes(`:vzrestore:${inputs.vmid}:`) && r.status === 400);
        // One unknown-task answer the create got past proves the grace; how many polls fit in the 200 ms depends on the machine's load.
        assert.ok(early.length >= 1, `expected the new restore task to be unknown for its first poll, saw ${early.length} such answers`);
    });

    it("refuses an archive that was not prepared, saying why, unless allowed", async () => {
        const archive = "local:backup/vzdump-lxc-9001-unprepared.tar.zst";
        const refused = next({ archive });
        await assert.rejects(host.checkAndCreate(refused), /refusing to restore: archive .*unprepared.* lacks "meshstack-golden-prepared".*SSH host keys.*machine-id.*proxmoxAllowUnpreparedArchive/s);
        assert.strictEqual(emulator.guestConfig(refused.vmid), undefined, "nothing was restored");
        const { outs } = await host.checkAndCreate(next({ archive, allowUnpreparedArchive: true }));
        assert.notStrictEqual(outs.observed.macs.net0, EMULATED_ARCHIVE_MAC);
    });

    it("a VMID already taken fails at once with the server's reason", async () => {
        const first = next();
        await host.checkAndCreate(first);
        await assert.rejects(host.checkAndCreate({ ...first, hostname: "second" }), /restore: POST .*\/nodes\/pve\/lxc failed: HTTP 500 CT \d+ already exists on node 'pve'/);
        assert.strictEqual(emulator.guestConfig(first.vmid)!.hostname, first.hostname, "the existing guest is untouched");
    });

    it("TLS: a pinned fingerprint works, a wrong one fails before the token is sent, no CA fails verification", async () => {
        const pinned = await host.checkAndCreate(next({ caBundlePem: "", tlsFingerprint: emulator.fingerprint }));
        assert.strictEqual(pinned.outs.observed.running, true);
        const before = emulator.requests.length;
        const wrong = emulator.fingerprint.replace(/^../, emulator.fingerprint.startsWith("00") ? "11" : "00");
        await assert.rejects(host.checkAndCreate(next({ caBundlePem: "", tlsFingerprint: wrong })), /SHA-256 fingerprint .* not the pinned/);
        await assert.rejects(host.checkAndCreate(next({ caBundlePem: "", tlsFingerprint: "" })), /self.signed certificate/i);
        assert.strictEqual(emulator.requests.length, before, "no request reached the server");
    });
});
