import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/**
 * Path of a test server or CLI installed by scripts/setup.sh. A missing tool
 * is an error, never a skip: CI must not go green without running the test.
 */
export function toolPath(name: string): string {
    const dir = process.env.MESHSTACK_TOOLS_DIR ?? path.join(os.homedir(), ".cache", "meshstack", "tools");
    const candidates = [path.join(dir, "bin", name), ...(process.env.PATH ?? "").split(":").map((p) => path.join(p, name))];
    const found = candidates.find((p) => fs.existsSync(p));
    if (!found) throw new Error(`${name} is not installed; run scripts/setup.sh (looked in ${dir}/bin and PATH)`);
    return found;
}

/** The older nats-server setup builds beside the pinned one: NATS_SERVER_PREVIOUS_VERSION in scripts/setup.sh, its one home. */
export function previousNatsServerVersion(): string {
    const match = /^readonly NATS_SERVER_PREVIOUS_VERSION="(v[^"]+)"$/m.exec(fs.readFileSync(path.join(__dirname, "..", "..", "scripts", "setup.sh"), "utf8"));
    if (!match) throw new Error("scripts/setup.sh names no NATS_SERVER_PREVIOUS_VERSION");
    return match[1];
}
