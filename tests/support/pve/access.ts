/**
 * Who may call the emulated API and how a refusal looks: API tokens with
 * their privileges, and the error every handler throws, which the server
 * sends as Proxmox VE does (the message in the HTTP reason phrase,
 * per-parameter messages in the body's `errors`).
 */
import * as crypto from "crypto";
import { setTimeout as sleep } from "timers/promises";

export const PVE_PRIVILEGES = [
    "VM.Allocate", "VM.Audit", "VM.Config.Disk", "VM.Config.Network", "VM.Config.Options", "VM.PowerMgmt", "VM.Backup",
    "Datastore.Audit", "Datastore.AllocateSpace",
] as const;
export type PvePrivilege = (typeof PVE_PRIVILEGES)[number];

export interface PveToken {
    /** USER@REALM!TOKENID */
    id: string;
    secret: string;
    privileges: readonly PvePrivilege[];
}

export class ApiError extends Error {
    constructor(public readonly status: number, message: string, public readonly errors?: Record<string, string>) {
        super(message);
    }
}

/**
 * The token an `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET` header
 * names, or 401 after pveproxy's delay for a failed authentication.
 */
export async function authenticate(header: string | undefined, tokens: readonly PveToken[], failureDelayMs: number): Promise<PveToken> {
    const fail = async (message: string): Promise<never> => {
        await sleep(failureDelayMs);
        throw new ApiError(401, message);
    };
    const m = /^PVEAPIToken=([^!=\s]+@[^!=\s]+)!([^=\s]+)=(\S+)$/.exec(header ?? "");
    if (!m) return fail("No ticket");
    const [, user, tokenName, secret] = m;
    const token = tokens.find((t) => t.id === `${user}!${tokenName}`);
    if (!token) return fail(`no such token '${tokenName}' for user '${user}'`);
    const a = Buffer.from(token.secret);
    const b = Buffer.from(secret);
    if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) return fail("invalid token value!");
    return token;
}

/** 403 "Permission check failed (<path>, <privilege>)" for the first privilege the token lacks. */
export function requirePrivilege(token: PveToken, aclPath: string, ...privileges: PvePrivilege[]): void {
    for (const privilege of privileges) {
        if (!token.privileges.includes(privilege)) throw new ApiError(403, `Permission check failed (${aclPath}, ${privilege})`);
    }
}
