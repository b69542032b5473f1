/**
 * A mesh member's file system under a temp root, with the agent's files as
 * its cloud-config writes them (cloudinit/agent.ts agentFiles), for running
 * the agent itself: MESHSTACK_AGENT_ROOT relocates every path, services are
 * left alone, the instance id is given.
 */
import { execFileSync, spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { agentFiles, AgentParams } from "../../cloudinit/agent";
import { AGENT_LOG_PATH, AGENT_SCRIPT_PATH } from "../../cloudinit/agent/layout";
import { NATS_ROUTE_PASSWORD_PATH } from "../../cloudinit/nats";
import { WG_CONF_PATH, WG_PRIVATE_KEY_PATH } from "../../cloudinit/wgMesh";
import { S3Credentials } from "../../providers/s3";
import { toolPath } from "./tools";

export interface AgentNode {
    root: string;
    /** The node's WireGuard private key, as its first boot made it. */
    privateKey: string;
    /** One agent run, as the timer starts it. */
    run(): SpawnSyncReturns<string>;
    /** A file under the root, or undefined when it does not exist. */
    read(file: string): string | undefined;
    wgConf(): string | undefined;
    log(): string;
}

/** Writes `content` at `file` under `root`, making its directories. */
export function writeUnder(root: string, file: string, content: string, mode: number): void {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), content, { mode });
}

/**
 * A fresh node root in `parent`: its WireGuard key, the route password a
 * NATS node's user-data carries, and with `credentials` the agent's files.
 */
export function agentNode(parent: string, params: AgentParams, options: { credentials?: S3Credentials; instanceId: string; routePassword: string }): AgentNode {
    const root = fs.mkdtempSync(path.join(parent, "root-"));
    const privateKey = execFileSync(toolPath("wg"), ["genkey"]).toString().trim();
    writeUnder(root, WG_PRIVATE_KEY_PATH, `${privateKey}\n`, 0o600);
    writeUnder(root, NATS_ROUTE_PASSWORD_PATH, `${options.routePassword}\n`, 0o600);
    if (options.credentials) {
        for (const file of agentFiles(params, options.credentials)) writeUnder(root, file.path, file.content, parseInt(file.permissions, 8));
    }
    const read = (file: string) => (fs.existsSync(path.join(root, file)) ? fs.readFileSync(path.join(root, file), "utf8") : undefined);
    return {
        root,
        privateKey,
        run: () => spawnSync("bash", [path.join(root, AGENT_SCRIPT_PATH)], {
            env: { ...process.env, MESHSTACK_AGENT_ROOT: root, MESHSTACK_AGENT_SKIP_SERVICES: "1", MESHSTACK_INSTANCE_ID: options.instanceId }, encoding: "utf8",
        }),
        read,
        wgConf: () => read(WG_CONF_PATH),
        log: () => read(AGENT_LOG_PATH) ?? "",
    };
}
