import * as assert from "assert";
import * as crypto from "crypto";
import { execFileSync } from "child_process";
import { agentKeyId, agentKeyReportProblems, openAgentKey, SEAL_SCHEME, sealAgentKey } from "../../lib/agentKey";
import { agentKeyReportKey } from "../../lib/runtimeChannel";

/** A WireGuard key pair as a node makes it, by `wg` itself. */
function wgKeyPair(): { privateKey: string; publicKey: string } {
    const privateKey = execFileSync("wg", ["genkey"], { encoding: "utf8" }).trim();
    return { privateKey, publicKey: execFileSync("wg", ["pubkey"], { input: privateKey + "\n", encoding: "utf8" }).trim() };
}
/** The node's own key pair, and another node's. */
const NODE = wgKeyPair();
const OTHER = wgKeyPair();
const PAIR = { accessKeyId: "MESHAGENTKEY2", secretAccessKey: "c2VjcmV0LWFnZW50LWtleS0y+/=_-0123456789abcdef" };

describe("agents' key: sealed to a node's WireGuard key", () => {
    it("opens with the node's private key, to the same key pair", () => {
        assert.deepStrictEqual(openAgentKey(sealAgentKey(PAIR, NODE.publicKey), NODE.privateKey), PAIR);
    });

    it("follows the documented scheme step by step, which the node's Python reads: X25519, HKDF-SHA256 salted with both public keys, an HMAC keystream, an HMAC over ephemeral key and ciphertext", () => {
        const sealed = sealAgentKey(PAIR, NODE.publicKey);
        const der = (prefix: string, raw: Buffer) => Buffer.concat([Buffer.from(prefix, "hex"), raw]);
        const ephemeral = Buffer.from(sealed.ephemeralPublicKey, "base64");
        const recipient = Buffer.from(NODE.publicKey, "base64");
        const shared = crypto.diffieHellman({
            privateKey: crypto.createPrivateKey({ key: der("302e020100300506032b656e04220420", Buffer.from(NODE.privateKey, "base64")), format: "der", type: "pkcs8" }),
            publicKey: crypto.createPublicKey({ key: der("302a300506032b656e032100", ephemeral), format: "der", type: "spki" }),
        });
        const okm = Buffer.from(crypto.hkdfSync("sha256", shared, Buffer.concat([ephemeral, recipient]), "meshstack agent key seal v1", 64));
        const ciphertext = Buffer.from(sealed.ciphertext, "base64");
        assert.strictEqual(crypto.createHmac("sha256", okm.subarray(32)).update(Buffer.concat([ephemeral, ciphertext])).digest("base64"), sealed.mac);
        const stream = Buffer.concat([0, 1, 2, 3].map((block) => crypto.createHmac("sha256", okm.subarray(0, 32)).update(Buffer.from([0, 0, 0, block])).digest()));
        const plain = Buffer.from(ciphertext.map((byte, i) => byte ^ stream[i]));
        assert.deepStrictEqual(JSON.parse(plain.toString("utf8")), PAIR);
    });

    it("does not open a seal of another scheme, naming it", () => {
        assert.throws(() => openAgentKey({ ...sealAgentKey(PAIR, NODE.publicKey), scheme: "rot13" as never }, NODE.privateKey), /^Error: sealed with "rot13"; this reads x25519-hkdf-sha256-hmac-ctr-v1$/);
    });

    it("does not open with another node's key", () => {
        assert.throws(() => openAgentKey(sealAgentKey(PAIR, NODE.publicKey), OTHER.privateKey), /^Error: the sealed agents' key does not verify: not sealed to this node's key, or altered$/);
    });

    it("does not open once altered: the MAC covers the ciphertext", () => {
        const sealed = sealAgentKey(PAIR, NODE.publicKey);
        const bytes = Buffer.from(sealed.ciphertext, "base64");
        bytes[0] ^= 1;
        assert.throws(() => openAgentKey({ ...sealed, ciphertext: bytes.toString("base64") }, NODE.privateKey), /does not verify/);
    });

    it("seals the same key to the same node to the same bytes, so an unchanged `up` rewrites no desired state", () => {
        assert.deepStrictEqual(sealAgentKey(PAIR, NODE.publicKey), sealAgentKey(PAIR, NODE.publicKey));
    });

    it("seals differently for another node and for another key", () => {
        const base = sealAgentKey(PAIR, NODE.publicKey);
        assert.notStrictEqual(sealAgentKey(PAIR, OTHER.publicKey).ephemeralPublicKey, base.ephemeralPublicKey);
        assert.notStrictEqual(sealAgentKey({ ...PAIR, secretAccessKey: PAIR.secretAccessKey + "x" }, NODE.publicKey).ephemeralPublicKey, base.ephemeralPublicKey);
    });

    it("carries neither half of the key pair in the clear", () => {
        const text = JSON.stringify(sealAgentKey(PAIR, NODE.publicKey));
        assert.ok(!text.includes(PAIR.accessKeyId) && !text.includes(PAIR.secretAccessKey));
        assert.strictEqual(sealAgentKey(PAIR, NODE.publicKey).scheme, SEAL_SCHEME);
    });

    it("refuses a recipient that is not a WireGuard public key, naming it", () => {
        assert.throws(() => sealAgentKey(PAIR, "not-a-key"), /^Error: cannot seal the agents' key to "not-a-key": not a WireGuard public key$/);
    });
});

describe("agents' key: ids and reports", () => {
    it("names a key by 16 hex characters of its access key id's SHA-256, never the id itself", () => {
        assert.strictEqual(agentKeyId("MESHAGENTKEY2"), require("crypto").createHash("sha256").update("MESHAGENTKEY2").digest("hex").slice(0, 16));
        assert.notStrictEqual(agentKeyId("MESHAGENTKEY2"), agentKeyId("MESHAGENTKEY3"));
    });

    it("puts a node's report under reports/<stack>/<node>/", () => {
        assert.strictEqual(agentKeyReportKey("dev", "nats-0"), "reports/dev/nats-0/agent-key.json");
    });

    it("accepts this node's report for this instance and key, and says what is wrong with any other", () => {
        const expected = { node: "nats-0", instanceId: "4711", agentKeyId: "0123456789abcdef" };
        assert.deepStrictEqual(agentKeyReportProblems({ version: 1, node: "nats-0", instanceId: 4711, agentKeyId: "0123456789abcdef" }, expected), []);
        assert.deepStrictEqual(agentKeyReportProblems({ version: 1, node: "nats-1", instanceId: "4710", agentKeyId: "fedcba9876543210" }, expected), [
            'is from node "nats-1", not nats-0', 'is from instance "4710", not 4711', 'names key "fedcba9876543210", not 0123456789abcdef',
        ]);
        assert.deepStrictEqual(agentKeyReportProblems("<html>", expected), ["is not a JSON object"]);
        assert.deepStrictEqual(agentKeyReportProblems(null, expected), ["is not a JSON object"]);
    });
});
