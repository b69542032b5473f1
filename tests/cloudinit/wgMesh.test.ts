/**
 * The mesh's pure pieces against the real wireguard-tools: the rendered
 * sections are what wg-quick's own parser accepts.
 */
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { isWgKey } from "../../lib/wgKey";
import { wgInterfaceSection } from "../../cloudinit/nodeBootstrap";
import { renderPeer, WG_PRIVATE_KEY_PATH } from "../../cloudinit/wgMesh";
import { toolPath } from "../support/tools";

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

describe("WireGuard mesh (pure, against real wireguard-tools)", function () {
    this.timeout(60_000);
    let dir: string;
    before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-wgmesh-"))));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("isWgKey accepts exactly the canonical base64 of 32 bytes", () => {
        assert.ok(isWgKey(wgGenkey()));
        // Non-zero pad bits decode to the same bytes, but no WireGuard tool prints them.
        assert.ok(!isWgKey("iIBAl9Nwao81+tKfMcp9c5V0EIUE4txeIAFcCHkGBVN="));
        assert.ok(!isWgKey("iIBAl9Nwao81+tKfMcp9c5V0EIUE4txeIAFcCHkGBVM"));
    });

    describe("renderPeer", () => {
        const key = wgPubkey(wgGenkey());

        it("renders a peer that is dialled: comment, key, endpoint, allowed IPs and keepalive, in wg-quick's order", () => {
            const section = renderPeer({ comment: "meshstack-dev-1", publicKey: key, endpoint: "203.0.113.12:51820", allowedIps: "10.44.0.11/32", keepaliveSeconds: 25 });
            assert.strictEqual(section, `[Peer]\n# meshstack-dev-1\nPublicKey = ${key}\nEndpoint = 203.0.113.12:51820\nAllowedIPs = 10.44.0.11/32\nPersistentKeepalive = 25\n`);
        });

        it("leaves out the endpoint and keepalive of a peer that dials in (an operator)", () => {
            const section = renderPeer({ comment: "laptop-ana", publicKey: key, allowedIps: "10.44.0.200/32" });
            assert.strictEqual(section, `[Peer]\n# laptop-ana\nPublicKey = ${key}\nAllowedIPs = 10.44.0.200/32\n`);
        });

        it("makes, with the node's [Interface], a wg0.conf wg-quick parses and wg setconf would take", () => {
            const peers = [
                renderPeer({ comment: "hub", publicKey: key, endpoint: "203.0.113.1:51820", allowedIps: "10.44.0.0/24", keepaliveSeconds: 25 }),
                renderPeer({ comment: "meshstack-dev-2", publicKey: wgPubkey(wgGenkey()), endpoint: "203.0.113.12:51820", allowedIps: "10.44.0.12/32", keepaliveSeconds: 25 }),
            ];
            const conf = wgInterfaceSection({ address: "10.44.0.11/24", listenPort: 51820 }) + "\n" + peers.join("\n");
            assert.match(conf, new RegExp(`^PostUp = wg set %i private-key ${WG_PRIVATE_KEY_PATH}$`, "m"));
            const stripped = wgQuickStrip(dir, conf);
            assert.strictEqual(stripped.split("\n").filter((l) => l === "[Peer]").length, 2);
            assert.match(stripped, /^\[Interface\]\nListenPort = 51820\n\[Peer\]/);
            assert.doesNotMatch(stripped, /PrivateKey/);
        });
    });
});
