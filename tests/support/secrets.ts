/**
 * Where secret values leak: the text of recorded inputs or outputs as the
 * engine would store and show them, i.e. everything outside a secret
 * wrapper. User-data travels base64 (and maybe gzipped), so such strings are
 * decoded too: a secret inside plain base64 is still a leak.
 */
import * as zlib from "zlib";
import { isRpcSecret } from "../../tooling/mockCloud";

export interface SecretValue {
    /** What it is, for the failure message. */
    what: string;
    value: string;
}

function decodedForms(text: string): string[] {
    if (text.length < 64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return [];
    const bytes = Buffer.from(text, "base64");
    const gzipped = bytes[0] === 0x1f && bytes[1] === 0x8b;
    try {
        return [(gzipped ? zlib.gunzipSync(bytes) : bytes).toString("utf8")];
    } catch {
        return [];
    }
}

/** Every string in `value` that is not inside a secret wrapper, with base64 strings decoded as well. */
export function plainTexts(value: unknown): string[] {
    if (isRpcSecret(value)) return [];
    if (typeof value === "string") return [value, ...decodedForms(value)];
    if (Array.isArray(value)) return value.flatMap(plainTexts);
    if (value && typeof value === "object") return Object.values(value).flatMap(plainTexts);
    return [];
}

/** The secrets found in plain text anywhere in `value`. */
export function leakedSecrets(value: unknown, secrets: readonly SecretValue[]): string[] {
    const texts = plainTexts(value);
    return secrets.filter((s) => texts.some((t) => t.includes(s.value))).map((s) => s.what);
}

/** A PEM's base64 body lines: JSON escapes the newlines between them, so each line is searched on its own. */
export function pemLines(what: string, pem: string): SecretValue[] {
    return pem
        .split("\n")
        .filter((line) => line.length >= 40 && !line.startsWith("-----"))
        .map((value) => ({ what, value }));
}
