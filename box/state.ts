/**
 * The box's state file: what a box run made, kept as the engine keeps a
 * stack's state, so a later `up` compares with it and `down` removes it even
 * after a crash.
 */
import * as fs from "fs";
import * as path from "path";
import { FirewallSpec } from "./network";
import { RUN_DIR } from "./paths";

export const STATE_FILE = path.join(RUN_DIR, "state.json");

export interface BoxResource {
    type: string;
    name: string;
    id: string;
    /** Provider outputs, secrets unwrapped: the state file is 0600 and never leaves the cache. */
    outputs: Record<string, any>;
    /** Inputs as last applied (secrets unwrapped, no provider text): what the next `up` compares with. */
    inputs: Record<string, any>;
    /** For dynamic resources: the provider text `delete` runs, as the engine keeps it in state. */
    serializedProvider?: string;
    createdMs: number;
    durationMs: number;
}

export interface BoxVm {
    name: string;
    index: number;
    address: string;
    tap: string;
    dir: string;
    firewall?: FirewallSpec;
    /** When QEMU was started (ms since its `up` began). */
    startedMs: number;
    /** Its instance was replaced or deleted by a later `up`: powered off, kept for its disk and console. */
    retired?: boolean;
}

export interface BoxState {
    stack: string;
    startedAt: string;
    imageDir: string;
    caCertFile: string;
    sshPrivateKey: string;
    minio: { url: string; endpointHost: string };
    /** The apt proxy the VMs' apt uses (Acquire::http::Proxy), from their seed disk. */
    aptProxy?: string;
    /** The config the caller set on top of the stack file, kept for the next `up` as a stack's config is. */
    overrides: Record<string, string>;
    /** Linode ids only grow; a new instance is told apart from the one it replaces by its id. */
    lastLinodeId?: number;
    resources: BoxResource[];
    vms: BoxVm[];
    outputs?: Record<string, unknown>;
    finishedMs?: number;
}

export function readState(): BoxState | undefined {
    return fs.existsSync(STATE_FILE) ? (JSON.parse(fs.readFileSync(STATE_FILE, "utf8")) as BoxState) : undefined;
}

export function writeState(state: BoxState): void {
    fs.writeFileSync(STATE_FILE, JSON.stringify(state, null, 2), { mode: 0o600 });
}
