/**
 * The mesh's pure pieces against the real wireguard-tools: the public key
 * derived in the program is the one `wg pubkey` prints, and the rendered
 * configs are what wg-quick's own parser accepts.
 */
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { isWgKey } from "../lib/wgKey";
import {
    renderHubPeers, renderSpokeWgFiles, WG_CONF_PATH, WG_PRIVATE_KEY_PATH, wgPublicKeyFromPrivate, WgSpokePeer,
} from "../cloudinit/wgMesh";
import { toolPath } from "./support/tools";

const wgPubkey = (privateKey: string) => execFileSync(toolPath("wg"), ["pubkey"], { input: `${privateKey}\n` }).toString().trim();
const wgGenkey = () => execFileSync(toolPath("wg"), ["genkey"]).toString().trim();

/** What wg(8) accepts in a configuration file, by section. */
const WG_SETCONF_KEYS: Record<string, string[]> = {
    Interface: ["PrivateKey", "ListenPort", "FwMark"],
    Peer: ["PublicKey", "PresharedKey", "AllowedIPs", "Endpoint", "PersistentKeepalive"],
};

/**
 * `wg-quick strip` on a config saved as <dir>/wg0.conf (wg-quick takes the
 * interface name from the file name), less comments and blank lines. What
 * strip leaves goes to `wg setconf`, which needs a WireGuard interface this
 * machine cannot create, so each remaining key is checked against wg(8).
 */
function wgQuickStrip(dir: string, conf: string): string {
    const file = path.join(dir, "wg0.conf");
    fs.writeFileSync(file, conf, { mode: 0o600 });
    const lines = execFileSync(toolPath("wg-quick"), ["strip", file]).toString().split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
    let section = "";
    for (const line of lines) {
        const header = /^\[(\w+)\]$/.exec(line);
        if (header) section = header[1];
        else assert.ok(WG_SETCONF_KEYS[section]?.includes(line.split(" = ")[0]), `wg setconf would refuse "${line}" in [${section}]`);
    }
    return lines.join("\n") + "\n";
}

/** 32 bytes whose first and last bytes need every bit of RFC 7748 clamping. */
function unclampedKey(): Buffer {
    const bytes = crypto.randomBytes(32);
    bytes[0] |= 0x07;
    bytes[31] = (bytes[31] | 0x80) & ~0x40;
    return bytes;
}

function clamp(bytes: Buffer): Buffer {
    const clamped = Buffer.from(bytes);
    clamped[0] &= 0xf8;
    clamped[31] = (clamped[31] & 0x7f) | 0x40;
    return clamped;
}

describe("WireGuard mesh (pure, against real wireguard-tools)", function () {
    this.timeout(60_000);
    let dir: string;
    before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-wgmesh-"))));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    describe("wgPublicKeyFromPrivate", () => {
        it("equals `wg pubkey` for 64 random byte strings, clamped or not", () => {
            for (let i = 0; i < 64; i++) {
                const privateKey = crypto.randomBytes(32).toString("base64");
                assert.strictEqual(wgPublicKeyFromPrivate(privateKey), wgPubkey(privateKey), `key ${i}`);
            }
        });

        it("equals `wg pubkey` for keys whose every clamping bit is wrong, and matches the clamped key's public key", () => {
            for (let i = 0; i < 16; i++) {
                const raw = unclampedKey();
                const privateKey = raw.toString("base64");
                const derived = wgPublicKeyFromPrivate(privateKey);
                assert.strictEqual(derived, wgPubkey(privateKey), `key ${i}`);
                assert.strictEqual(derived, wgPublicKeyFromPrivate(clamp(raw).toString("base64")), `key ${i} clamped`);
            }
        });

        it("equals `wg pubkey` for the extremes (all zero, all one bits) and for `wg genkey` keys", () => {
            const keys = [Buffer.alloc(32, 0x00), Buffer.alloc(32, 0xff), Buffer.alloc(32, 0x80)].map((b) => b.toString("base64"));
            for (let i = 0; i < 8; i++) keys.push(wgGenkey());
            for (const privateKey of keys) assert.strictEqual(wgPublicKeyFromPrivate(privateKey), wgPubkey(privateKey), privateKey);
        });

        it("refuses what is not the base64 of 32 bytes, without echoing it", () => {
            const good = wgGenkey();
            for (const bad of ["", good.slice(0, -1), `${good}\n`, crypto.randomBytes(31).toString("base64"), crypto.randomBytes(33).toString("base64"), good.replace(/=$/, "A")]) {
                assert.throws(() => wgPublicKeyFromPrivate(bad), (err: Error) => /exactly 32 bytes/.test(err.message) && (bad === "" || !err.message.includes(bad)));
            }
        });

        it("isWgKey accepts exactly the canonical base64 of 32 bytes", () => {
            assert.ok(isWgKey(wgGenkey()));
            // Non-zero pad bits decode to the same bytes, but no WireGuard tool prints them.
            assert.ok(!isWgKey("iIBAl9Nwao81+tKfMcp9c5V0EIUE4txeIAFcCHkGBVN="));
            assert.ok(!isWgKey("iIBAl9Nwao81+tKfMcp9c5V0EIUE4txeIAFcCHkGBVM"));
        });
    });

    describe("spoke files", () => {
        const hubKey = wgPublicKeyFromPrivate(crypto.randomBytes(32).toString("base64"));
        const privateKey = unclampedKey().toString("base64");
        const files = renderSpokeWgFiles({ address: "10.44.0.11", subnet: "10.44.0.0/24", privateKey, hub: { publicKey: hubKey, endpoint: "203.0.113.12:51820" } });

        it("writes the private key alone, 0600, in a form `wg` reads", () => {
            assert.deepStrictEqual([files.privateKey.path, files.privateKey.permissions], [WG_PRIVATE_KEY_PATH, "0600"]);
            assert.strictEqual(files.privateKey.content, `${privateKey}\n`);
            assert.strictEqual(wgPubkey(files.privateKey.content.trim()), wgPublicKeyFromPrivate(privateKey));
        });

        it("renders a wg0.conf that wg-quick parses: the node's address, the key from its file, the hub as the one peer", () => {
            assert.deepStrictEqual([files.conf.path, files.conf.permissions], [WG_CONF_PATH, "0600"]);
            assert.doesNotMatch(files.conf.content, /PrivateKey|ListenPort/);
            assert.match(files.conf.content, /^Address = 10\.44\.0\.11\/24$/m);
            assert.match(files.conf.content, /^PostUp = wg set %i private-key \/etc\/wireguard\/privatekey$/m);
            assert.strictEqual(
                wgQuickStrip(dir, files.conf.content),
                `[Interface]\n[Peer]\nPublicKey = ${hubKey}\nEndpoint = 203.0.113.12:51820\nAllowedIPs = 10.44.0.0/24\nPersistentKeepalive = 25\n`,
            );
        });

        const base = { address: "10.44.0.11", subnet: "10.44.0.0/24", privateKey, hub: { publicKey: hubKey, endpoint: "203.0.113.12:51820" } };
        const invalid: [string, object, RegExp][] = [
            ["an address outside the subnet", { address: "10.45.0.11" }, /not an IPv4 address inside 10\.44\.0\.0\/24/],
            ["a subnet without prefix", { subnet: "10.44.0.0" }, /not an IPv4 network with prefix/],
            ["a malformed private key", { privateKey: "c2VjcmV0" }, /private key is not the base64 of 32 bytes/],
            ["a malformed hub key", { hub: { publicKey: "nope", endpoint: "203.0.113.12:51820" } }, /hub's WireGuard public key "nope"/],
            ["an endpoint without port", { hub: { publicKey: hubKey, endpoint: "203.0.113.12" } }, /endpoint "203\.0\.113\.12" is not ipv4:port/],
            ["an endpoint with port 0", { hub: { publicKey: hubKey, endpoint: "203.0.113.12:0" } }, /is not ipv4:port/],
        ];
        for (const [what, override, message] of invalid) {
            it(`refuses ${what}`, () => {
                assert.throws(() => renderSpokeWgFiles({ ...base, ...override }), message);
            });
        }
    });

    describe("hub peers", () => {
        const spokes: WgSpokePeer[] = [10, 11, 12].map((host, i) => ({
            name: `meshstack-dev-${i}`, address: `10.44.0.${host}`, publicKey: wgPublicKeyFromPrivate(crypto.randomBytes(32).toString("base64")),
        }));

        it("renders one [Peer] per spoke with its key and /32, which wg-quick parses", () => {
            const peers = renderHubPeers("10.44.0.0/24", spokes);
            const expected = spokes.map((s) => `[Peer]\nPublicKey = ${s.publicKey}\nAllowedIPs = ${s.address}/32\n`).join("");
            const stripped = wgQuickStrip(dir, `[Interface]\nListenPort = 51820\n${peers}`);
            assert.strictEqual(stripped, `[Interface]\nListenPort = 51820\n${expected}`);
            for (const s of spokes) assert.match(peers, new RegExp(`^# ${s.name}\\nPublicKey = ${s.publicKey.replace(/[+/]/g, "\\$&")}$`, "m"));
        });

        it("renders nothing for no spokes", () => {
            assert.strictEqual(renderHubPeers("10.44.0.0/24", []), "");
        });

        const invalid: [string, WgSpokePeer[], RegExp][] = [
            ["two spokes with one address", [spokes[0], { ...spokes[1], address: spokes[0].address }], /10\.44\.0\.10 is used by another spoke/],
            ["two spokes with one key", [spokes[0], { ...spokes[1], publicKey: spokes[0].publicKey }], /is used by another spoke/],
            ["a spoke outside the subnet", [{ ...spokes[0], address: "10.44.1.10" }], /not an IPv4 address inside 10\.44\.0\.0\/24/],
            ["a malformed key", [{ ...spokes[0], publicKey: "x" }], /public key "x" is not the base64 of 32 bytes/],
            ["a name that is not a hostname", [{ ...spokes[0], name: "a\n[Peer]" }], /peer name .* is not allowed/],
        ];
        for (const [what, peers, message] of invalid) {
            it(`refuses ${what}`, () => {
                assert.throws(() => renderHubPeers("10.44.0.0/24", peers), message);
            });
        }
    });
});
