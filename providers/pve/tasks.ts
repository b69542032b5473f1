/**
 * Proxmox VE tasks: restore, resize, start, stop and destroy answer with a
 * task id (UPID) at once and do their work in a worker. A task holds locks
 * while it runs (a resize holds the config lock while it grows the
 * filesystem), so the next call waits for it to end; a failed task says why
 * only in its log, so its failure quotes the log's tail.
 *
 * Captured by value into serialized providers: plain functions only.
 */
import { formatSeconds } from "../../lib/duration";
import { isUnknownTask, PveCaller, pveCall, pveFailure, PveFailure, sleep } from "./client";

export interface TaskWaitPolicy {
    /** Wait between two status polls. */
    pollIntervalMs: number;
    /** How long after dispatch a task may still be unknown ("no such task"). */
    noSuchTaskGraceMs: number;
    /** The task's deadline, from dispatch. */
    timeoutMs: number;
}

/** Tail of a task's log, for errors. */
export async function taskLogTail(caller: PveCaller, upid: string, lines = 20): Promise<string[]> {
    try {
        const log = (await pveCall(caller, "read task log", "GET", `/nodes/${caller.conn.node}/tasks/${encodeURIComponent(upid)}/log`, { start: 0, limit: 5000 })) as { t: string }[];
        return log.slice(-lines).map((l) => l.t);
    } catch (err) {
        return [`(task log unavailable: ${(err as Error).message})`];
    }
}

/** A stopped task's exit status read: "WARNINGS: n" is a success too, its effect kept, and worth showing the log for. */
export function taskOutcome(exitstatus: string): "ok" | "warnings" | "failed" {
    if (exitstatus === "OK") return "ok";
    if (/^WARNINGS: \d+$/.test(exitstatus)) return "warnings";
    return "failed";
}

/** Waits for one task with its own deadline; OK and WARNINGS: n are success, anything else an error with the log's tail. */
export async function waitTask(caller: PveCaller, operation: string, upid: unknown, wait: TaskWaitPolicy): Promise<void> {
    if (typeof upid !== "string" || !upid.startsWith("UPID:")) {
        throw pveFailure(`${caller.name}: ${operation} returned ${JSON.stringify(upid)}, not a task id (UPID)`);
    }
    const dispatched = Date.now();
    const timeout = wait.timeoutMs;
    const statusPath = `/nodes/${caller.conn.node}/tasks/${encodeURIComponent(upid)}/status`;
    let lastProgress = dispatched;
    for (;;) {
        await sleep(Math.min(wait.pollIntervalMs, Math.max(0, dispatched + timeout - Date.now())));
        let status: { status: string; exitstatus?: string } | undefined;
        try {
            status = await pveCall(caller, `${operation} (task status)`, "GET", statusPath);
        } catch (err) {
            const f = err as PveFailure;
            // A task the node has just forked is not in its task list yet.
            const early = isUnknownTask(f.pveStatus, f.pveErrors) && Date.now() - dispatched < wait.noSuchTaskGraceMs;
            if (!early) throw err;
        }
        const elapsed = Date.now() - dispatched;
        if (status?.status === "stopped") {
            const exit = status.exitstatus ?? "";
            const outcome = taskOutcome(exit);
            if (outcome === "ok") return;
            if (outcome === "warnings") {
                console.log(`${caller.shortName}: ${operation} ended with ${exit} (success); log tail:\n  ${(await taskLogTail(caller, upid, 10)).join("\n  ")}`);
                return;
            }
            const tail = await taskLogTail(caller, upid);
            throw pveFailure(
                `${caller.name}: ${operation} failed: task ${upid} ended with exit status ` +
                    `${JSON.stringify(exit)} after ${formatSeconds(elapsed)}; last lines of its log:\n  ${tail.join("\n  ")}`,
            );
        }
        if (elapsed >= timeout) {
            throw pveFailure(
                `${caller.name}: ${operation}: task ${upid} still ${status?.status ?? "unknown"} ` +
                    `after ${formatSeconds(elapsed)}, past its ${formatSeconds(timeout)} deadline. It may still be running on the node: read its log with ` +
                    `\`pvenode task log ${upid}\` or in the GUI under Tasks, then run \`pulumi up\` again (or \`pulumi refresh\`).`,
            );
        }
        if (Date.now() - lastProgress >= 10_000) {
            lastProgress = Date.now();
            console.log(`${caller.shortName}: ${operation}: task running for ${formatSeconds(elapsed)} (deadline ${formatSeconds(timeout)})`);
        }
    }
}
