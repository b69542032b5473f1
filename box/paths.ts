/**
 * Where the box keeps its things: one box per machine, under the cache
 * (never in the repo), and its logs for a run under out/box/<stack>/.
 */
import * as os from "os";
import * as path from "path";

export const REPO_ROOT = path.resolve(__dirname, "..");
export const BOX_CACHE = process.env.MESHSTACK_BOX_CACHE ?? path.join(os.homedir(), ".cache", "meshstack", "box");
/** One box per machine: the underlay namespace and addresses are fixed. */
export const RUN_DIR = path.join(BOX_CACHE, "run");
/** The apt cache's files: kept across box runs (pool files never change), never in the repo. */
export const APT_CACHE_DIR = path.join(BOX_CACHE, "apt");
export const APT_CACHE_RUN_DIR = path.join(RUN_DIR, "apt-cache");

export function logsDir(stack: string): string {
    return path.join(REPO_ROOT, "out", "box", stack);
}
