/**
 * The node's tasks: restore, resize, start, stop and destroy each start a
 * worker with a real UPID, a log and a status, and take effect when the
 * worker ends. A new task is unknown for a moment (400, the words "no such
 * task" in `errors.upid`), as on a node whose task list lags the fork.
 */
import { ApiError, PveToken } from "./access";
import { PveFaults } from "./faults";

interface Task {
    upid: string;
    node: string;
    type: string;
    id: string;
    user: string;
    pid: number;
    pstart: number;
    starttime: number;
    visibleAt: number;
    status: "running" | "stopped";
    exitstatus?: string;
    log: string[];
}

function hex8(n: number): string {
    return n.toString(16).toUpperCase().padStart(8, "0");
}

export class PveTasks {
    private readonly tasks = new Map<string, Task>();
    private readonly timers = new Set<NodeJS.Timeout>();
    private pidCounter = 0x1000;

    /** `invisibleMs`: how long a just-dispatched task is unknown to tasks/{upid}/status. */
    constructor(private readonly node: string, private readonly faults: PveFaults, private readonly invisibleMs: number) {}

    list(): { upid: string; type: string; exitstatus?: string }[] {
        return [...this.tasks.values()].map((t) => ({ upid: t.upid, type: t.type, exitstatus: t.exitstatus }));
    }

    /** Cancels every task still running: their effects never happen. */
    stop(): void {
        for (const timer of this.timers) clearTimeout(timer);
    }

    /**
     * Starts a task: a UPID as pve-common's fork_worker writes it, a log, and
     * its effect applied when it ends (unless a fault makes it fail).
     */
    dispatch(type: string, vmid: number, token: PveToken, durationMs: number, log: string[], effect: () => void, undo?: () => void): string {
        if (this.faults.takeFork(type)) throw new ApiError(500, "got no worker upid - start worker failed");
        const pid = this.pidCounter++;
        const now = Date.now();
        const starttime = Math.floor(now / 1000);
        const pstart = Math.floor(process.uptime() * 100) + pid;
        const upid = `UPID:${this.node}:${hex8(pid)}:${hex8(pstart)}:${hex8(starttime)}:${type}:${vmid}:${token.id}:`;
        const task: Task = { upid, node: this.node, type, id: String(vmid), user: token.id, pid, pstart, starttime, visibleAt: now + this.invisibleMs, status: "running", log: [...log] };
        this.tasks.set(upid, task);
        const fault = this.faults.takeTask(type);
        this.later(durationMs, () => {
            if (fault && !fault.exitstatus.startsWith("WARNINGS: ")) {
                task.log.push(...fault.log, `TASK ERROR: ${fault.exitstatus}`);
                task.exitstatus = fault.exitstatus;
                undo?.();
            } else {
                effect();
                if (fault) task.log.push(...fault.log, `TASK ${fault.exitstatus}`);
                else task.log.push("TASK OK");
                task.exitstatus = fault ? fault.exitstatus : "OK";
            }
            task.status = "stopped";
        });
        return upid;
    }

    /** GET tasks/{upid}/status or tasks/{upid}/log. */
    endpoint(upid: string, what: string, params: Record<string, string>): unknown {
        const task = this.tasks.get(upid);
        if (!/^UPID:[^:]+:[0-9A-F]{8}:[0-9A-F]{8,}:[0-9A-F]{8}:[^:]+:[^:]*:[^:]+:$/.test(upid)) {
            throw new ApiError(400, "Parameter verification failed.", { upid: "unable to parse worker upid" });
        }
        // Tasks.pm raises a parameter exception: the reason is the generic one, the words are in errors.upid.
        if (!task || Date.now() < task.visibleAt) throw new ApiError(400, "Parameter verification failed.", { upid: "no such task" });
        if (what === "log") {
            const start = Number(params.start ?? 0);
            const limit = Number(params.limit ?? 50);
            return task.log.slice(start, start + limit).map((t, i) => ({ n: start + i + 1, t }));
        }
        return {
            upid, node: task.node, pid: task.pid, pstart: task.pstart, starttime: task.starttime, type: task.type, id: task.id, user: task.user,
            status: task.status, ...(task.exitstatus !== undefined ? { exitstatus: task.exitstatus } : {}),
        };
    }

    private later(ms: number, fn: () => void): void {
        const timer = setTimeout(() => {
            this.timers.delete(timer);
            fn();
        }, ms);
        this.timers.add(timer);
    }
}
