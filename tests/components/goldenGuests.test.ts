/**
 * The golden-guest graph as the real program (index.ts) builds it under the
 * mock cloud: off for the dev stack as committed, guests restored from a
 * given archive, or from a golden image the stack builds over SSH.
 */
import * as assert from "assert";
import * as path from "path";
import { GOLDEN_PREPARED_MARKER } from "../../cloudinit/goldenPrepare";
import { pemBlock, qualify } from "../../lib/config";
import { isRpcSecret, MockCloud, RecordedResource, startMockCloud, unwrapSecrets } from "../../tooling/mockCloud";
import { cliStackConfigOf } from "../../tooling/cliConfig";

const REPO_ROOT = path.resolve(__dirname, "../..");
const GOLDEN_GUEST = "pulumi-nodejs:dynamic/meshstack:GoldenGuest";
const COMMAND = "command:remote:Command";
const TOKEN_SECRET = "5f0c3e6e-3d1b-4d7e-9d61-0a1b2c3d4e5f";
const SSH_KEY = pemBlock("OPENSSH PRIVATE KEY", "golden-build-key-for-tests");

const PROXMOX = {
    proxmoxEndpoint: "https://pve.example.net:8006", proxmoxNode: "pve", proxmoxTokenId: "meshstack@pve!deploy", proxmoxTokenSecret: TOKEN_SECRET,
    proxmoxStorage: "local-lvm", proxmoxGuests: JSON.stringify(["vmid=101;hostname=web-1;rootfsGiB=16;mp=/srv/data:8;onboot=true", "vmid=102;hostname=web-2"]),
};
const ARCHIVE = "local:backup/vzdump-lxc-9000-2026_06_09-20_41_10.tar.zst";
const TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

async function program(extra: Record<string, string>, secretKeys: string[]): Promise<{ cloud: MockCloud; outputs: Record<string, unknown> }> {
    const cli = cliStackConfigOf(REPO_ROOT, "dev");
    if (!cli.ok) throw new Error(cli.errors.join("\n"));
    const raw = cli.raw;
    const config = { ...raw.values, ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [qualify(k), v])) };
    const cloud = await startMockCloud({ project: "meshstack", stack: "dev", config, secretKeys: [...raw.secretKeys, ...secretKeys.map(qualify)] });
    delete require.cache[require.resolve("../../index")];
    const outputs = await cloud.runProgram(() => ({ ...require("../../index") }));
    return { cloud, outputs };
}

const guestsOf = (cloud: MockCloud) => cloud.ofType(GOLDEN_GUEST);
const input = (r: RecordedResource, key: string) => unwrapSecrets(r.inputs[key]);

describe("GoldenGuests in the program (mock cloud)", function () {
    this.timeout(60_000);

    it("the committed dev stack has no Proxmox part: no guest, no golden build, an empty output", async () => {
        const { cloud, outputs } = await program({}, []);
        assert.deepStrictEqual(guestsOf(cloud), []);
        assert.deepStrictEqual(cloud.ofType(COMMAND), []);
        assert.deepStrictEqual(outputs.proxmoxGuests, {});
    });

    describe("with a given archive", () => {
        let cloud: MockCloud;
        before(async () => {
            ({ cloud } = await program({ ...PROXMOX, proxmoxArchive: ARCHIVE }, ["proxmoxTokenSecret"]));
        });

        it("makes one GoldenGuest per configured guest inside the pve component, restoring the archive", () => {
            const guests = guestsOf(cloud);
            assert.deepStrictEqual(guests.map((g) => g.name).sort(), ["pve-web-1", "pve-web-2"]);
            for (const guest of guests) {
                assert.strictEqual(guest.parent, "pve");
                assert.strictEqual(input(guest, "archive"), ARCHIVE);
            }
            const web1 = cloud.byName("pve-web-1");
            assert.deepStrictEqual(
                [input(web1, "vmid"), input(web1, "hostname"), input(web1, "rootfsSizeGiB"), input(web1, "startOnBoot"), input(web1, "mountPoints")],
                [101, "web-1", 16, true, [{ path: "/srv/data", sizeGiB: 8, storage: "local-lvm" }]],
            );
            assert.deepStrictEqual(cloud.ofType(COMMAND), [], "no golden build when the archive is given");
        });

        it("keeps the token secret secret", () => {
            for (const guest of guestsOf(cloud)) {
                assert.ok(isRpcSecret(guest.inputs.tokenSecret), `${guest.name}: tokenSecret is not secret`);
                assert.ok(!JSON.stringify({ ...guest.inputs, tokenSecret: undefined, __provider: undefined }).includes(TOKEN_SECRET));
            }
        });
    });

    describe("with a golden image built by the stack", () => {
        let cloud: MockCloud;
        before(async () => {
            ({ cloud } = await program({ ...PROXMOX, proxmoxGoldenTemplate: TEMPLATE, proxmoxSshPrivateKey: SSH_KEY, proxmoxGoldenPackages: '["docker.io"]' }, ["proxmoxTokenSecret", "proxmoxSshPrivateKey"]));
        });

        it("builds the golden over SSH as root on the endpoint's host with the rendered prepare script", () => {
            const [build] = cloud.ofType(COMMAND);
            assert.strictEqual(build.name, "pve-golden-build");
            assert.strictEqual(build.parent, "pve-golden");
            const connection = unwrapSecrets(build.inputs.connection);
            assert.deepStrictEqual([connection.host, connection.user], ["pve.example.net", "root"]);
            const stdin = input(build, "stdin") as string;
            assert.match(stdin, /pct create "\$vmid" 'local:vztmpl\/debian-12-standard_12\.7-1_amd64\.tar\.zst'/);
            assert.match(stdin, new RegExp(`--description '${GOLDEN_PREPARED_MARKER} v1 prepare=[0-9a-f]{16}'`));
            const prepare = Buffer.from(/printf '%s' '([A-Za-z0-9+/=]+)' \| base64 -d/.exec(stdin)![1], "base64").toString();
            assert.match(prepare, /--no-install-recommends openssh-server ca-certificates docker\.io/);
        });

        it("restores every guest from the built archive, after the build", () => {
            for (const guest of guestsOf(cloud)) {
                assert.ok(guest.dependencies.has("pve-golden-build"), `${guest.name} depends on ${[...guest.dependencies].join(", ")}`);
                assert.strictEqual(input(guest, "allowUnpreparedArchive"), false);
            }
        });

        it("keeps the SSH private key and the token secret secret", () => {
            const [build] = cloud.ofType(COMMAND);
            assert.ok(isRpcSecret(build.inputs.connection) || isRpcSecret((build.inputs.connection as Record<string, unknown>).privateKey));
            for (const guest of guestsOf(cloud)) assert.ok(isRpcSecret(guest.inputs.tokenSecret));
        });
    });
});
