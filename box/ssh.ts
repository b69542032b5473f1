/**
 * Commands on box VMs over break-glass SSH (the box's key, the host's
 * underlay address in meshstack:breakGlassSshCidrs): what an operator does
 * with a real node, and how the tests and the bench look inside.
 */
import { execFile, execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";

const runFile = promisify(execFile);

export function boxSshKey(cacheDir: string): { privateKey: string; publicKey: string } {
    const dir = path.join(cacheDir, "ssh");
    const privateKey = path.join(dir, "id_ed25519");
    if (!fs.existsSync(privateKey)) {
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "meshstack-box", "-f", privateKey]);
    }
    return { privateKey, publicKey: fs.readFileSync(`${privateKey}.pub`, "utf8").trim() };
}

/**
 * How long ssh may take to connect and exchange banners. Under TCG on a busy
 * 2-core host a VM just powered on again took more than 10 s to send its
 * banner ("Connection timed out during banner exchange"), and the box's
 * Day-2 hook failed on it; a VM that is down still fails within this.
 */
const SSH_CONNECT_TIMEOUT_SECONDS = 30;

function sshArgs(privateKey: string, address: string, timeoutSeconds: number): string[] {
    return [
        "-i", privateKey, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "-o", `ConnectTimeout=${Math.min(timeoutSeconds, SSH_CONNECT_TIMEOUT_SECONDS)}`, `root@${address}`,
    ];
}

/** Runs a shell command as root on the VM; rejects with its stderr on a non-zero exit. */
export async function ssh(privateKey: string, address: string, command: string, timeoutSeconds = 60): Promise<string> {
    const { stdout } = await runFile("ssh", [...sshArgs(privateKey, address, timeoutSeconds), command], { timeout: timeoutSeconds * 1000, maxBuffer: 32 * 1024 * 1024 });
    return stdout;
}
