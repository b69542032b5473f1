/**
 * The agents' key, rotated with overlap and without touching user-data.
 *
 * A node boots with the key that was current when its instance was created
 * (in its user-data, fixed for the instance's life). Afterwards the key it
 * should use reaches it through its desired state, as an offer: the key's
 * id, the key pair sealed to the node's own WireGuard public key, and a
 * presigned PUT for its report. The agent opens the seal, proves the key
 * with one signed GET, switches, and reports the id it now reads with. The
 * deploy revokes the old key only once every node has reported (or its
 * deadline has passed, naming the nodes that did not).
 *
 * Why sealed: the desired state is readable with the old key. A rotation is
 * often made because that key may have leaked; a next key in the clear
 * would go to whoever holds the old one. Sealed to the node's WireGuard key,
 * only that node can open it, with a private key that never left it.
 *
 * The seal, from the standard library on both ends (Node's crypto here,
 * Python's hmac and hashlib plus `openssl pkeyutl -derive` on the node,
 * which has no AES outside openssl's argv):
 *
 * - an X25519 exchange between an ephemeral key and the node's WireGuard key;
 * - HKDF-SHA256 (salt: the ephemeral public key then the node's; info:
 *   SEAL_INFO) to 64 bytes: an encryption key and a MAC key;
 * - the plaintext XOR a keystream of HMAC-SHA256(encryption key, block
 *   counter as 4 bytes big-endian), a PRF in counter mode;
 * - HMAC-SHA256(MAC key, ephemeral public key || ciphertext), checked before
 *   anything is decrypted.
 *
 * Deterministic: the ephemeral key is derived from the key pair and the
 * recipient, so the same key for the same node seals to the same bytes and
 * an `up` that changes nothing rewrites no desired state. It reveals only
 * that a node was offered the same key twice.
 *
 * Pure apart from Node's crypto: no Pulumi.
 */
import * as crypto from "crypto";
import { isWgPublicKey } from "./wgKey";

export const SEAL_SCHEME = "x25519-hkdf-sha256-hmac-ctr-v1";
export const SEAL_INFO = "meshstack agent key seal v1";
/** PKCS#8 and SPKI prefixes of a raw 32-byte X25519 key (RFC 8410): what openssl reads on the node. */
export const X25519_PKCS8_PREFIX = "302e020100300506032b656e04220420";
export const X25519_SPKI_PREFIX = "302a300506032b656e032100";
/** Hex characters of a key id: enough to tell keys apart in a log line, too few to matter if read. */
export const AGENT_KEY_ID_LENGTH = 16;

export interface AgentKeyPair {
    accessKeyId: string;
    secretAccessKey: string;
}

export interface SealedAgentKey {
    scheme: typeof SEAL_SCHEME;
    /** Raw X25519 public key, base64. */
    ephemeralPublicKey: string;
    ciphertext: string;
    mac: string;
}

/** What a desired state offers its node (DesiredState.agentKey). */
export interface AgentKeyOffer {
    /** agentKeyId of the key: what the node reports once it reads with it. */
    id: string;
    /** The key pair as JSON, sealed to the node's WireGuard public key. */
    sealed: SealedAgentKey;
    /** Presigned PUT of the node's report (agentKeyReportKey). A credential: never logged. */
    reportUrl: string;
}

/** What an agent writes through its report URL once it reads with the offered key. */
export interface AgentKeyReport {
    version: 1;
    node: string;
    instanceId: string;
    agentKeyId: string;
}

/** The name of a key in logs, reports and state: a digest of its access key id, never the id itself. */
export function agentKeyId(accessKeyId: string): string {
    return crypto.createHash("sha256").update(accessKeyId, "utf8").digest("hex").slice(0, AGENT_KEY_ID_LENGTH);
}

function x25519PublicKey(raw: Buffer): crypto.KeyObject {
    return crypto.createPublicKey({ key: Buffer.concat([Buffer.from(X25519_SPKI_PREFIX, "hex"), raw]), format: "der", type: "spki" });
}

function x25519PrivateKey(raw: Buffer): crypto.KeyObject {
    return crypto.createPrivateKey({ key: Buffer.concat([Buffer.from(X25519_PKCS8_PREFIX, "hex"), raw]), format: "der", type: "pkcs8" });
}

function rawPublicKey(key: crypto.KeyObject): Buffer {
    return key.export({ format: "der", type: "spki" }).subarray(X25519_SPKI_PREFIX.length / 2);
}

function keystreamXor(encryptionKey: Buffer, data: Buffer): Buffer {
    const out = Buffer.alloc(data.length);
    for (let offset = 0, block = 0; offset < data.length; offset += 32, block++) {
        const counter = Buffer.alloc(4);
        counter.writeUInt32BE(block);
        const stream = crypto.createHmac("sha256", encryptionKey).update(counter).digest();
        for (let i = 0; i < 32 && offset + i < data.length; i++) out[offset + i] = data[offset + i] ^ stream[i];
    }
    return out;
}

function sealKeys(shared: Buffer, ephemeral: Buffer, recipient: Buffer): { encryptionKey: Buffer; macKey: Buffer } {
    const okm = Buffer.from(crypto.hkdfSync("sha256", shared, Buffer.concat([ephemeral, recipient]), SEAL_INFO, 64));
    return { encryptionKey: okm.subarray(0, 32), macKey: okm.subarray(32) };
}

function macOf(macKey: Buffer, ephemeral: Buffer, ciphertext: Buffer): Buffer {
    return crypto.createHmac("sha256", macKey).update(Buffer.concat([ephemeral, ciphertext])).digest();
}

/** The key pair sealed to a node's WireGuard public key (see the module comment). */
export function sealAgentKey(pair: AgentKeyPair, recipientWgPublicKey: string): SealedAgentKey {
    if (!isWgPublicKey(recipientWgPublicKey)) throw new Error(`cannot seal the agents' key to ${JSON.stringify(recipientWgPublicKey)}: not a WireGuard public key`);
    const recipient = Buffer.from(recipientWgPublicKey, "base64");
    const ephemeralSeed = crypto.createHmac("sha256", `${pair.accessKeyId}:${pair.secretAccessKey}`).update(Buffer.concat([Buffer.from(SEAL_INFO), recipient])).digest();
    const ephemeralPrivate = x25519PrivateKey(ephemeralSeed);
    const ephemeral = rawPublicKey(crypto.createPublicKey(ephemeralPrivate));
    const shared = crypto.diffieHellman({ privateKey: ephemeralPrivate, publicKey: x25519PublicKey(recipient) });
    const { encryptionKey, macKey } = sealKeys(shared, ephemeral, recipient);
    const ciphertext = keystreamXor(encryptionKey, Buffer.from(JSON.stringify(pair), "utf8"));
    return { scheme: SEAL_SCHEME, ephemeralPublicKey: ephemeral.toString("base64"), ciphertext: ciphertext.toString("base64"), mac: macOf(macKey, ephemeral, ciphertext).toString("base64") };
}

/**
 * The key pair, with the node's WireGuard private key (raw, base64, as `wg
 * genkey` prints it). The node does the same in Python; this one is for
 * tests and for the property that every seal opens.
 */
export function openAgentKey(sealed: SealedAgentKey, wgPrivateKey: string): AgentKeyPair {
    if (sealed.scheme !== SEAL_SCHEME) throw new Error(`sealed with ${JSON.stringify(sealed.scheme)}; this reads ${SEAL_SCHEME}`);
    const privateKey = x25519PrivateKey(Buffer.from(wgPrivateKey, "base64"));
    const recipient = rawPublicKey(crypto.createPublicKey(privateKey));
    const ephemeral = Buffer.from(sealed.ephemeralPublicKey, "base64");
    const shared = crypto.diffieHellman({ privateKey, publicKey: x25519PublicKey(ephemeral) });
    const { encryptionKey, macKey } = sealKeys(shared, ephemeral, recipient);
    const ciphertext = Buffer.from(sealed.ciphertext, "base64");
    if (!crypto.timingSafeEqual(macOf(macKey, ephemeral, ciphertext), Buffer.from(sealed.mac, "base64"))) throw new Error("the sealed agents' key does not verify: not sealed to this node's key, or altered");
    return JSON.parse(keystreamXor(encryptionKey, ciphertext).toString("utf8")) as AgentKeyPair;
}

/** Why a report is not this node's, for this instance, on this key; empty when it is. */
export function agentKeyReportProblems(doc: unknown, expected: { node: string; instanceId: string; agentKeyId: string }): string[] {
    if (typeof doc !== "object" || doc === null) return ["is not a JSON object"];
    const d = doc as Partial<AgentKeyReport>;
    const problems: string[] = [];
    if (d.node !== expected.node) problems.push(`is from node ${JSON.stringify(d.node)}, not ${expected.node}`);
    if (String(d.instanceId) !== expected.instanceId) problems.push(`is from instance ${JSON.stringify(d.instanceId)}, not ${expected.instanceId}`);
    if (d.agentKeyId !== expected.agentKeyId) problems.push(`names key ${JSON.stringify(d.agentKeyId)}, not ${expected.agentKeyId}`);
    return problems;
}
