/**
 * Waiting for Proxmox VE tasks, against the Proxmox VE API emulator
 * (tests/support/pve/): success, warnings, failure with the log's tail,
 * a task not listed yet, and the deadline.
 */
import * as assert from "assert";
import { PveCaller, pveCall } from "../../../providers/pve/client";
import { taskLogTail, taskOutcome, TaskWaitPolicy, waitTask } from "../../../providers/pve/tasks";
import { PveTarget, startPveEmulator } from "../../support/pve/target";
import { captureConsoleLog } from "../../support/consoleLog";

describe("PVE tasks: taskOutcome", () => {
    it("reads OK as a success", () => {
        assert.strictEqual(taskOutcome("OK"), "ok");
    });

    it("reads WARNINGS: n as a success with warnings", () => {
        assert.strictEqual(taskOutcome("WARNINGS: 2"), "warnings");
    });

    it("reads anything else as a failure, even words around a warning count", () => {
        for (const exit of ["", "unable to restore CT 101", "WARNINGS: x", "WARNINGS: 2 more", "got WARNINGS: 2", "ok"]) assert.strictEqual(taskOutcome(exit), "failed", exit);
    });
});

describe("PVE tasks: waiting against the emulator", () => {
    // A restore takes 40 ms; a new task is unknown for its first 200 ms, longer than a TLS handshake on a busy machine.
    const TIME_SCALE = 0.01;
    const WAIT: TaskWaitPolicy = { pollIntervalMs: 5, noSuchTaskGraceMs: 1_000, timeoutMs: 5_000 };
    let target: PveTarget;
    let caller: PveCaller;
    let vmid = 200;
    const logged = captureConsoleLog();

    before(async () => {
        target = await startPveEmulator({ timeScale: TIME_SCALE, timings: { taskInvisibleMs: 20_000 } });
        caller = {
            conn: {
                endpoint: target.endpoint, node: target.node, tokenId: target.tokenId, tokenSecret: target.tokenSecret, caBundlePem: target.caBundlePem,
                tlsFingerprint: "", requestTimeoutMs: 5_000,
            },
            retry: { attempts: 3, initialDelayMs: 1, multiplier: 2, maxDelayMs: 5, jitter: 0 },
            name: "Test (CT x on node pve)", shortName: "Test (CT x)",
        };
    });
    after(async () => {
        await target?.stop();
    });
    beforeEach(() => {
        target.emulator!.clearFaults();
    });

    /** Dispatches a restore of a fresh VMID; resolves with its UPID. */
    async function restore(): Promise<string> {
        vmid++;
        return pveCall(caller, "restore", "POST", `/nodes/${target.node}/lxc`, { vmid, ostemplate: target.archive, restore: 1, storage: target.storage });
    }

    it("resolves when the task ends OK, after its effect", async () => {
        await waitTask(caller, "restore", await restore(), WAIT);
        assert.strictEqual(target.emulator!.guestConfig(vmid)?.lock, undefined);
        assert.deepStrictEqual(logged.lines, []);
    });

    it("waits through a task not listed yet, within the grace", async () => {
        const upid = await restore();
        await waitTask(caller, "restore", upid, WAIT);
        const unknown = target.emulator!.requests.filter((r) => r.path.includes(upid) && r.status === 400);
        assert.ok(unknown.length >= 1, "the first polls met no such task");
    });

    it("fails on a task not listed after the grace, with the node's answer", async () => {
        await assert.rejects(waitTask(caller, "restore", await restore(), { ...WAIT, noSuchTaskGraceMs: 0 }), (err: Error) => {
            assert.match(err.message, /^Test \(CT x on node pve\): restore \(task status\): GET .*\/status failed: HTTP 400 Parameter verification failed\. \(upid: no such task\)$/);
            return true;
        });
    });

    it("takes WARNINGS: n for success and shows the log's tail", async () => {
        target.emulator!.failTasks({ type: "vzrestore", exitstatus: "WARNINGS: 1", log: ["WARN: something odd"], times: 1 });
        await waitTask(caller, "restore", await restore(), WAIT);
        assert.strictEqual(logged.lines.length, 1);
        assert.ok(logged.lines[0].startsWith("Test (CT x): restore ended with WARNINGS: 1 (success); log tail:\n  "), logged.lines[0]);
        assert.ok(logged.lines[0].endsWith("\n  WARN: something odd\n  TASK WARNINGS: 1"), logged.lines[0]);
    });

    it("fails on any other exit status, quoting it and the last lines of the log", async () => {
        const lines = Array.from({ length: 25 }, (_, i) => `line ${i + 1}`);
        target.emulator!.failTasks({ type: "vzrestore", exitstatus: "unable to restore CT", log: lines, times: 1 });
        const upid = await restore();
        await assert.rejects(waitTask(caller, "restore", upid, WAIT), (err: Error) => {
            const [first, ...tail] = err.message.split("\n  ");
            assert.match(first, new RegExp(`^Test \\(CT x on node pve\\): restore failed: task ${upid.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} ended with exit status "unable to restore CT" after [0-9.]+s; last lines of its log:$`));
            assert.deepStrictEqual(tail, [...lines.slice(-19), "TASK ERROR: unable to restore CT"]);
            return true;
        });
    });

    it("refuses an answer that is not a task id", async () => {
        await assert.rejects(waitTask(caller, "start", null, WAIT), (err: Error) => {
            assert.strictEqual(err.message, "Test (CT x on node pve): start returned null, not a task id (UPID)");
            return true;
        });
        await assert.rejects(waitTask(caller, "start", "OK", WAIT), /start returned "OK", not a task id/);
    });

    it("gives up at the deadline, saying where to read the task's log", async () => {
        const upid = await restore();
        await assert.rejects(waitTask(caller, "restore", upid, { ...WAIT, timeoutMs: 15 }), (err: Error) => {
            assert.match(err.message, /^Test \(CT x on node pve\): restore: task UPID:\S+ still (unknown|running) after [0-9.]+s, past its [0-9.]+s deadline\. /);
            assert.ok(err.message.includes(`\`pvenode task log ${upid}\``));
            return true;
        });
        await waitTask(caller, "restore", upid, WAIT);
    });

    it("taskLogTail returns the last lines, and says why when the log cannot be read", async () => {
        const upid = await restore();
        await waitTask(caller, "restore", upid, WAIT);
        assert.deepStrictEqual(await taskLogTail(caller, upid, 2), ["Total bytes read: 312156160 (298MiB, 95MiB/s)", "TASK OK"]);
        assert.strictEqual((await taskLogTail(caller, upid)).length, 4, "20 lines by default: all four");
        const [unavailable] = await taskLogTail(caller, "UPID:pve:nonsense");
        assert.match(unavailable, /^\(task log unavailable: .*HTTP 400 Parameter verification failed\. \(upid: unable to parse worker upid\)\)$/);
    });
});
