/**
 * Private-key material that ends up where it does not belong (a public-key
 * or certificate config key) must never reach an error message, a log line
 * or CI output: it is named by a fingerprint instead. Pure: no Pulumi.
 */
import * as crypto from "crypto";

/**
 * A PEM or OpenSSH private key block, as written or inside a JSON string
 * (newlines escaped): from its BEGIN line to its END line, or, cut short,
 * to the closing quote or the end of the text.
 */
const PRIVATE_KEY_BLOCK = /-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----[\s\S]*?(?:-----END \1PRIVATE KEY-----|(?=")|$)/g;
/** An OpenSSH private key's base64 body pasted without its armour: base64("openssh-key-v1\0"...). */
const OPENSSH_KEY_BODY = /b3BlbnNzaC1rZXktdjE[A-Za-z0-9+/=\\\s]*/g;

/** A short, stable, one-way name for a value: enough to tell two apart, nothing of the value itself. */
export function fingerprint(text: string): string {
    const normalized = text.replace(/\\n|\s/g, "");
    return `sha256:${crypto.createHash("sha256").update(normalized).digest("hex").slice(0, 12)}`;
}

export function containsPrivateKey(text: string): boolean {
    return redactPrivateKeys(text) !== text;
}

/** The text with every private key in it replaced by `[private key sha256:...]`. */
export function redactPrivateKeys(text: string): string {
    return text
        .replace(PRIVATE_KEY_BLOCK, (block) => `[private key ${fingerprint(block)}]`)
        .replace(OPENSSH_KEY_BODY, (body) => `[private key ${fingerprint(body)}]`);
}
