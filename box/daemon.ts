/**
 * The box's own servers (MinIO, the apt cache) run detached, as a cloud's
 * services outlive the command that made them, and are found again by the
 * pidfile they left in their run directory.
 */
import * as fs from "fs";

/**
 * Signals the process a pidfile names and removes the pidfile; false when
 * there was none to stop. A pid recycled by anything whose command line
 * lacks `marker` is never signalled.
 */
export function stopByPidFile(file: string, marker: string, signal: NodeJS.Signals): boolean {
    if (!fs.existsSync(file)) return false;
    const pid = Number(fs.readFileSync(file, "utf8"));
    fs.rmSync(file, { force: true });
    try {
        if (!fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(marker)) return false;
        process.kill(pid, signal);
        return true;
    } catch {
        return false;
    }
}
