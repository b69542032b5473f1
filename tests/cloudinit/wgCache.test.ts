import * as assert from "assert";
import { METADATA_GUARD_UNIT_NAME } from "../../cloudinit/metadataGuard";
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { parse } from "yaml";
import { agentFiles } from "../../cloudinit/agent";
import { AGENT_TIMER_NAME } from "../../cloudinit/agent/layout";
import { NODE_BOOTSTRAP_SCRIPT_PATH } from "../../cloudinit/nodeBootstrap";
import {
    hubInterfaceSection, renderPeerSection, renderWgCacheCloudConfig, WG_HUB_SYSCTL_PATH, WgHubParams,
} from "../../cloudinit/wgCache";
import { wgSubnet } from "../../lib/topology";
import { assertValidCloudConfig } from "../support/cloudInit";
import { toolPath } from "../support/tools";

const run = promisify(execFile);

describe("WireGuard cache cloud-config rendering", function () {
    this.timeout(30_000);
    let dir: string;
    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-wg-cloudconfig-"));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    const variants: { name: string; params: WgHubParams }[] = [
        { name: "defaults", params: { node: "wg-cache", publishPutUrl: "https://us-east-1.linodeobjects.com/b/published/dev/wg-cache/0a1b.json?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab12", listenPort: 51820, address: "10.44.0.1/24", subnet: "10.44.0.0/24" } },
        { name: "another port and subnet", params: { node: "hub", publishPutUrl: "http://127.0.0.1:9000/b/k?X-Amz-Signature=00", listenPort: 1024, address: "172.20.9.1/16", subnet: "172.20.0.0/16" } },
        { name: "a URL with shell metacharacters", params: { node: "wg-cache", publishPutUrl: "https://h/b/a%20key?a=1&b=$(reboot)&c=`id`", listenPort: 65535, address: "192.168.77.1/30", subnet: "192.168.77.0/30" } },
    ];
    const render = (params: WgHubParams) => renderWgCacheCloudConfig(params, agentFiles({
        node: params.node, endpoint: "https://us-east-1.linodeobjects.com", region: "us-east-1", bucket: "meshstack-dev-runtime", key: `desired/dev/${params.node}.json`,
        wgAddress: params.address, wgListenPort: params.listenPort, interfaceSection: hubInterfaceSection(params),
    }, { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "c2VjcmV0LXNlY3JldA" }));
    const bootstrapOf = (text: string) => (parse(text).write_files as { path: string; content: string }[]).find((f) => f.path === NODE_BOOTSTRAP_SCRIPT_PATH)!.content;
    for (const v of variants) {
        it(`passes cloud-init schema and shellcheck: ${v.name}`, async () => {
            await assertValidCloudConfig(render(v.params), dir);
        });
    }

    it("starts with #cloud-config, runs the bootstrap script it writes (root-only), then starts the agent's timer", () => {
        const text = render(variants[0].params);
        assert.ok(text.startsWith("#cloud-config\n"));
        const doc = parse(text);
        assert.deepStrictEqual(doc.runcmd, [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", METADATA_GUARD_UNIT_NAME], [NODE_BOOTSTRAP_SCRIPT_PATH], ["systemctl", "enable", "--now", AGENT_TIMER_NAME]]);
        const file = doc.write_files.find((f: { path: string }) => f.path === NODE_BOOTSTRAP_SCRIPT_PATH);
        assert.strictEqual(file.permissions, "0700");
        assert.strictEqual(file.owner, "root:root");
    });

    it("forwards on wg0 alone: the sysctl drop-in and the policy rules keep forwarded traffic inside the subnet", () => {
        const script = bootstrapOf(render(variants[0].params));
        assert.ok(script.includes(WG_HUB_SYSCTL_PATH));
        assert.match(script, /^net\.ipv4\.conf\.wg0\.forwarding = 1$/m);
        assert.match(script, /^PostUp = ip -4 rule add iif %i to 10\.44\.0\.0\/24 lookup main pref 31000$/m);
        assert.match(script, /^PostUp = ip -4 rule add iif %i unreachable pref 31001$/m);
    });

    it("embeds the URL so the shell sees it verbatim (no expansion of $, backticks or quotes)", async () => {
        const url = variants[2].params.publishPutUrl;
        const script = bootstrapOf(render(variants[2].params));
        const line = script.split("\n").find((l) => l.startsWith("readonly publish_put_url="))!;
        const { stdout } = await run("bash", ["-c", `${line}\nprintf %s "$publish_put_url"`]);
        assert.strictEqual(stdout, url);
    });

    it("never uses awscli (it breaks against Linode Object Storage) and uploads with curl --fail-with-body and retries", () => {
        const script = bootstrapOf(render(variants[0].params));
        assert.doesNotMatch(script, /\baws\b/);
        assert.match(script, /curl --fail-with-body [^\n]*\\\n\s+--retry \d+ --retry-all-errors/);
    });

    const invalid: { name: string; params: Partial<WgHubParams>; message: RegExp }[] = [
        { name: "port 0", params: { listenPort: 0 }, message: /meshstack:wgListenPort/ },
        { name: "address without prefix", params: { address: "10.44.0.1" }, message: /address "10\.44\.0\.1" is not an IPv4 address with prefix inside the subnet 10\.44\.0\.0\/24/ },
        { name: "IPv6 address", params: { address: "fd00::1/64" }, message: /address "fd00::1\/64" is not an IPv4 address with prefix/ },
        { name: "URL that is not http(s)", params: { publishPutUrl: "s3://bucket/key" }, message: /presigned PUT URL/ },
        { name: "a node name that is not a plain name", params: { node: "wg cache" }, message: /node name "wg cache" is not allowed/ },
    ];
    for (const c of invalid) {
        it(`refuses to render with ${c.name}`, () => {
            assert.throws(() => renderWgCacheCloudConfig({ ...variants[0].params, ...c.params }, []), c.message);
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
