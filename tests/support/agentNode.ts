/**
 * One node's agent, as cloud-init would lay it out, under a temp root
 * (MESHSTACK_AGENT_ROOT): the settings, the read-only key's curl config,
 * the renderer and the script, exactly as agentFiles renders them.
 */
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import { AgentParams, agentFiles } from "../../cloudinit/agent";
import { AGENT_LOG_PATH, AGENT_ROOT_ENV, AGENT_SCRIPT_PATH } from "../../cloudinit/agent/layout";
import { INSTANCE_ID_ENV } from "../../cloudinit/nodeBootstrap";
import { WG_PRIVATE_KEY_PATH } from "../../cloudinit/wgMesh";
import { S3Credentials } from "../../providers/s3";
import { toolPath } from "./tools";

const run = promisify(execFile);

export class AgentNode {
    constructor(public readonly root: string, public readonly params: AgentParams, public readonly instanceId: string, credentials: S3Credentials) {
        for (const file of agentFiles(params, credentials)) {
            const target = path.join(root, file.path);
            fs.mkdirSync(path.dirname(target), { recursive: true });
            fs.writeFileSync(target, file.content, { mode: parseInt(file.permissions, 8) });
        }
        fs.mkdirSync(path.join(root, path.dirname(WG_PRIVATE_KEY_PATH)), { recursive: true, mode: 0o700 });
    }

    get privateKeyFile(): string {
        return path.join(this.root, WG_PRIVATE_KEY_PATH);
    }

    /** A fresh WireGuard key, as the first boot makes it; returns the public key. */
    async generateKey(): Promise<string> {
        const privateKey = (await run(toolPath("wg"), ["genkey"])).stdout;
        fs.writeFileSync(this.privateKeyFile, privateKey, { mode: 0o600 });
        return this.publicKey();
    }

    async publicKey(): Promise<string> {
        return new Promise((resolve, reject) => {
            const child = execFile(toolPath("wg"), ["pubkey"], (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
            child.stdin!.end(fs.readFileSync(this.privateKeyFile));
        });
    }

    /**
     * One agent run (what the timer starts). `prefix` runs it inside a
     * namespace (nsenter ...); `timeoutMs` is the unit's TimeoutStartSec
     * here, longer for a run that moves nats-server.
     */
    async runOnce(options: { prefix?: string[]; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
        const command = [...(options.prefix ?? []), path.join(this.root, AGENT_SCRIPT_PATH)];
        return run(command[0], command.slice(1), {
            env: { PATH: process.env.PATH, [AGENT_ROOT_ENV]: this.root, [INSTANCE_ID_ENV]: this.instanceId, ...options.env },
            timeout: options.timeoutMs ?? 60_000,
        });
    }

    log(): string {
        const file = path.join(this.root, AGENT_LOG_PATH);
        return fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    }
}
