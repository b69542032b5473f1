/**
 * Faults on demand: HTTP errors for the next N matching calls (or all),
 * failed tasks with a log, tasks ending in `WARNINGS: n`, workers that do
 * not start. Each fault is used up one matching call or task at a time.
 */

export interface HttpFault {
    method?: string;
    /** Matched against the path below /api2/json. */
    path: RegExp;
    status: number;
    message: string;
    /** How many matching calls fail; Infinity for a permanent fault. */
    times: number;
}

export interface TaskFault {
    /** Task type: vzrestore, resize, vzstart, vzstop, vzdestroy. */
    type: string;
    /** "WARNINGS: n" keeps the task's effect; anything else is a failure that undoes nothing it did not do. */
    exitstatus: string;
    log: string[];
    times: number;
}

/** The next `times` tasks of a type whose worker does not start. */
export interface ForkFault {
    type: string;
    times: number;
}

export class PveFaults {
    private readonly http: HttpFault[] = [];
    private readonly tasks: TaskFault[] = [];
    private readonly forks: ForkFault[] = [];

    addHttp(fault: HttpFault): void {
        this.http.push({ ...fault });
    }

    addTask(fault: TaskFault): void {
        this.tasks.push({ ...fault, log: [...fault.log] });
    }

    addFork(fault: ForkFault): void {
        this.forks.push({ ...fault });
    }

    clear(): void {
        this.http.length = 0;
        this.tasks.length = 0;
        this.forks.length = 0;
    }

    /** The HTTP fault this call meets, used up by one. */
    takeHttp(method: string, apiPath: string): HttpFault | undefined {
        const fault = this.http.find((f) => f.times > 0 && (!f.method || f.method === method) && f.path.test(apiPath));
        if (fault) fault.times--;
        return fault;
    }

    /** The fault a new task of this type meets, used up by one. */
    takeTask(type: string): TaskFault | undefined {
        const fault = this.tasks.find((f) => f.times > 0 && f.type === type);
        if (fault) fault.times--;
        return fault;
    }

    /** Whether a new task of this type fails to start, using the fault up by one. */
    takeFork(type: string): boolean {
        const fault = this.forks.find((f) => f.times > 0 && f.type === type);
        if (fault) fault.times--;
        return fault !== undefined;
    }
}
