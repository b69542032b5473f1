/**
 * The one home of what a WireGuard key looks like. Captured by value into
 * the public-key poll's serialized provider: plain functions only.
 */

/**
 * The canonical base64 of exactly 32 bytes, as `wg genkey` and `wg pubkey`
 * print: 43 characters and one `=`, the last character carrying two zero
 * pad bits. A truncated write or an HTML error page never matches.
 */
export function isWgKey(text: string): boolean {
    return /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(text);
}

const ALL_ZERO_KEY = "A".repeat(43) + "=";

/**
 * A key a peer can be given. All zeros is a well-formed private key (X25519
 * clamps it) but as a public key it is a low-order point no handshake
 * completes with, and what an uninitialised buffer publishes.
 */
export function isWgPublicKey(text: string): boolean {
    return isWgKey(text) && text !== ALL_ZERO_KEY;
}

/**
 * Whether a key has the shape `wg genkey` gives every private key: X25519
 * clamping clears the low 3 bits of the first byte and sets the last byte's
 * top bits to 01. A random public key has that shape 1 time in 32
 * (1/8 * 1/4), so this is grounds for a warning, never a refusal.
 */
export function looksClamped(text: string): boolean {
    if (!isWgKey(text)) return false;
    const bytes = Buffer.from(text, "base64");
    return (bytes[0] & 7) === 0 && (bytes[31] & 0xc0) === 0x40;
}
