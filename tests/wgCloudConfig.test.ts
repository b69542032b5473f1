import * as assert from "assert";
import { METADATA_GUARD_UNIT_NAME } from "../cloudinit/metadataGuard";
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { parse } from "yaml";
import {
    renderPeerSection, renderWgCacheCloudConfig, WG_BOOTSTRAP_SCRIPT_PATH, WgBootstrapParams,
} from "../cloudinit/wgCache";
import { wgSubnet } from "../lib/topology";
import { assertValidCloudConfig } from "./support/cloudInit";
import { toolPath } from "./support/tools";

const run = promisify(execFile);

describe("WireGuard cache cloud-config rendering", function () {
    this.timeout(30_000);
    let dir: string;
    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-wg-cloudconfig-"));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    const variants: { name: string; params: WgBootstrapParams }[] = [
        { name: "defaults", params: { pubkeyPutUrl: "https://us-east-1.linodeobjects.com/b/bootstrap/wg/dev/cache/0a1b/pubkey?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab12", listenPort: 51820, address: "10.44.0.1/24", subnet: "10.44.0.0/24" } },
        { name: "another port and subnet", params: { pubkeyPutUrl: "http://127.0.0.1:9000/b/k?X-Amz-Signature=00", listenPort: 1024, address: "172.20.9.1/16", subnet: "172.20.0.0/16" } },
        { name: "a URL with shell metacharacters", params: { pubkeyPutUrl: "https://h/b/it's%20a%20key?a=1&b=$(reboot)&c=`id`", listenPort: 65535, address: "192.168.77.1/30", subnet: "192.168.77.0/30" } },
    ];
    for (const v of variants) {
        it(`passes cloud-init schema and shellcheck: ${v.name}`, async () => {
            await assertValidCloudConfig(renderWgCacheCloudConfig(v.params), dir);
        });
    }

    it("starts with #cloud-config and runs the bootstrap script it writes (root-only)", () => {
        const text = renderWgCacheCloudConfig(variants[0].params);
        assert.ok(text.startsWith("#cloud-config\n"));
        const doc = parse(text);
        assert.deepStrictEqual(doc.runcmd, [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", METADATA_GUARD_UNIT_NAME], [WG_BOOTSTRAP_SCRIPT_PATH]]);
        const file = doc.write_files.find((f: { path: string }) => f.path === WG_BOOTSTRAP_SCRIPT_PATH);
        assert.strictEqual(file.permissions, "0700");
        assert.strictEqual(file.owner, "root:root");
    });

    it("embeds the URL so the shell sees it verbatim (no expansion of $, backticks or quotes)", async () => {
        const url = variants[2].params.pubkeyPutUrl;
        const script = parse(renderWgCacheCloudConfig(variants[2].params)).write_files[0].content as string;
        const line = script.split("\n").find((l) => l.startsWith("readonly pubkey_put_url="))!;
        const { stdout } = await run("bash", ["-c", `${line}\nprintf %s "$pubkey_put_url"`]);
        assert.strictEqual(stdout, url);
    });

    it("never uses awscli (it breaks against Linode Object Storage) and uploads with curl --fail-with-body and retries", () => {
        const script = parse(renderWgCacheCloudConfig(variants[0].params)).write_files[0].content as string;
        assert.doesNotMatch(script, /\baws\b/);
        assert.match(script, /curl --fail-with-body [^\n]*\\\n\s+--retry \d+ --retry-all-errors/);
    });

    const invalid: { name: string; params: Partial<WgBootstrapParams>; message: RegExp }[] = [
        { name: "port 0", params: { listenPort: 0 }, message: /meshstack:wgListenPort/ },
        { name: "address without prefix", params: { address: "10.44.0.1" }, message: /meshstack:wgCacheAddress/ },
        { name: "IPv6 address", params: { address: "fd00::1/64" }, message: /meshstack:wgCacheAddress/ },
        { name: "URL that is not http(s)", params: { pubkeyPutUrl: "s3://bucket/key" }, message: /presigned PUT URL/ },
    ];
    for (const c of invalid) {
        it(`refuses to render with ${c.name}`, () => {
            assert.throws(() => renderWgCacheCloudConfig({ ...variants[0].params, ...c.params }), c.message);
        });
    }

    const subnets: [string, string][] = [
        ["10.44.0.1/24", "10.44.0.0/24"],
        ["172.20.9.1/16", "172.20.0.0/16"],
        ["192.168.77.2/30", "192.168.77.0/30"],
        ["10.1.2.3/32", "10.1.2.3/32"],
        ["255.255.255.255/8", "255.0.0.0/8"],
    ];
    for (const [address, subnet] of subnets) {
        it(`derives the WireGuard subnet ${subnet} from ${address}`, () => {
            assert.strictEqual(wgSubnet(address), subnet);
        });
    }

    it("renders a [Peer] section an operator can paste into wg-quick", async () => {
        const section = renderPeerSection({
            name: "meshstack WireGuard cache dev-cache",
            publicKey: "iIBAl9Nwao81+tKfMcp9c5V0EIUE4txeIAFcCHkGBVM=",
            endpoint: "45.79.1.2:51820",
            allowedIps: "10.44.0.0/24",
        });
        assert.strictEqual(
            section,
            "[Peer]\n# meshstack WireGuard cache dev-cache\nPublicKey = iIBAl9Nwao81+tKfMcp9c5V0EIUE4txeIAFcCHkGBVM=\n" +
                "Endpoint = 45.79.1.2:51820\nAllowedIPs = 10.44.0.0/24\nPersistentKeepalive = 25\n",
        );
        // wg-quick's own parser accepts it as part of a config.
        const conf = path.join(dir, "wg9.conf");
        fs.writeFileSync(conf, `[Interface]\nPrivateKey = ${(await run(toolPath("wg"), ["genkey"])).stdout}\n${section}`, { mode: 0o600 });
        const { stdout } = await run(toolPath("wg-quick"), ["strip", conf]);
        assert.match(stdout, /PersistentKeepalive = 25/);
    });
});
