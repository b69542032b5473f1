import * as assert from "assert";
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import {
    FIRST_BOOT_UNIT_NAME, GOLDEN_PREPARED_MARKER, goldenPackages, prepareScriptDigest, renderFirstBootUnit, renderGoldenBuildScript,
    renderGoldenDeleteScript, renderGoldenPrepareScript,
} from "../../cloudinit/goldenPrepare";
import { toolPath } from "../support/tools";

const run = promisify(execFile);

describe("golden image rendering", () => {
    let dir: string;
    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-golden-render-"));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    async function shellcheck(name: string, text: string): Promise<void> {
        const file = path.join(dir, name);
        fs.writeFileSync(file, text);
        await run(toolPath("shellcheck"), [file]).catch((e) => assert.fail(`shellcheck ${name}:\n${e.stdout}${e.stderr}`));
    }

    const build = () => renderGoldenBuildScript({
        vmid: 9000, template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", storage: "local-lvm", rootfsGiB: 8, bridge: "vmbr0",
        backupStorage: "local", hostname: "meshstack-golden", prepareScript: renderGoldenPrepareScript({ packages: ["docker.io"] }),
    });

    it("the prepare, build and delete scripts pass shellcheck", async () => {
        await shellcheck("prepare.sh", renderGoldenPrepareScript({ packages: ["docker.io", "curl"] }));
        await shellcheck("build.sh", build());
        await shellcheck("delete.sh", renderGoldenDeleteScript());
    });

    it("the first-boot unit passes systemd-analyze verify", async () => {
        const file = path.join(dir, FIRST_BOOT_UNIT_NAME);
        fs.writeFileSync(file, renderFirstBootUnit());
        const { stdout, stderr } = await run(toolPath("systemd-analyze"), ["verify", file]);
        assert.strictEqual(`${stdout}${stderr}`.split("\n").filter((l) => l.includes(FIRST_BOOT_UNIT_NAME)).join("\n"), "");
    });

    it("the first-boot unit runs ssh-keygen -A before ssh.service, only while host keys are missing", () => {
        const unit = renderFirstBootUnit();
        assert.match(unit, /^Before=ssh\.service/m);
        assert.match(unit, /^ConditionPathExistsGlob=!\/etc\/ssh\/ssh_host_\*_key$/m);
        assert.match(unit, /^ExecStart=\/usr\/bin\/ssh-keygen -A$/m);
        assert.match(unit, /^WantedBy=.*ssh\.service/m);
    });

    it("the prepare script installs first, then cleans every identity a restore would copy", () => {
        const script = renderGoldenPrepareScript({ packages: ["docker.io"] });
        const at = (needle: string) => {
            const i = script.indexOf(needle);
            assert.ok(i >= 0, `missing ${needle}`);
            return i;
        };
        assert.ok(at("apt-get install -y -qq --no-install-recommends openssh-server ca-certificates docker.io") < at("rm -f /etc/ssh/ssh_host_*"));
        for (const step of ["truncate -s 0 /etc/machine-id", "rm -f /etc/hostname", "rm -rf /var/lib/apt/lists/*", "find /var/log -type f -delete", `systemctl enable ${FIRST_BOOT_UNIT_NAME}`]) at(step);
    });

    it("refuses package names apt would read as options or globs", () => {
        assert.throws(() => goldenPackages({ packages: ["-o=APT::x"] }), /not Debian package names: -o=APT::x/);
        assert.throws(() => goldenPackages({ packages: ["docker*"] }), /allowed: lowercase/);
    });

    it("the build script marks the archive only after the prepare script succeeded, and prints the volid last", () => {
        const script = build();
        const marker = `${GOLDEN_PREPARED_MARKER} v1 prepare=${prepareScriptDigest(renderGoldenPrepareScript({ packages: ["docker.io"] }))}`;
        assert.ok(script.indexOf("pct exec \"$vmid\" -- /bin/bash -s") < script.indexOf(`--description '${marker}'`));
        assert.match(script, /--unprivileged 1 --features nesting=1,keyctl=1/);
        assert.match(script, /echo "\$volid"\n$/);
    });
});
