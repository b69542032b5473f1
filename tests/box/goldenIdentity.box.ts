/**
 * Box tier (slow, real VMs): the golden prepare script's identity clean,
 * for real. A Debian 12 root from debootstrap (openssh-server, systemd, a
 * kernel) gets the rendered prepare script in a chroot, is copied twice as
 * two restores would copy it, and each copy boots as a QEMU VM under its
 * own systemd. Both must come up with ssh.service active and host keys and
 * machine-ids of their own. A third copy with the first-boot unit removed
 * must show ssh.service failed: the unit is what makes sshd work.
 *
 * Run with `npm run test:golden-boot`. Measured on the shared 2-core box
 * (load average about 12): debootstrap 3 min when the root is not cached,
 * the chroot prepare 15-35 s, each boot 2-5 min under TCG (RSA host-key
 * generation is the slow part); 12-14 min in all when warm.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { FIRST_BOOT_UNIT_NAME, renderGoldenPrepareScript } from "../../cloudinit/goldenPrepare";
import { BOOT_TIMEOUT_MS, BootedVm, bootRoot, copyRoot, ensureDebianRoot, installProbe, removeWorkDir, runInChroot } from "./goldenVm";

const log = (line: string) => console.log(`    [golden-boot] ${line}`);

function hostKeys(vm: BootedVm): Record<string, string> {
    return Object.fromEntries(Object.entries(vm.probe).filter(([k]) => k.startsWith("hostkey_")));
}

describe("golden image identity clean, booted for real (QEMU, box tier)", function () {
    this.timeout(30 * 60_000);
    let work: string;
    const booted: Record<string, BootedVm> = {};

    before(async function () {
        this.timeout(30 * 60_000);
        const started = Date.now();
        const base = await ensureDebianRoot(log);
        log(`debootstrap root ready in ${((Date.now() - started) / 1000).toFixed(0)} s: ${base}`);
        work = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-golden-boot-"));
        const golden = path.join(work, "golden");
        await copyRoot(base, golden);
        const prepared = Date.now();
        await runInChroot(golden, renderGoldenPrepareScript());
        log(`prepare script ran in the chroot in ${((Date.now() - prepared) / 1000).toFixed(0)} s`);
        for (const name of ["restore-a", "restore-b", "no-unit"]) {
            await copyRoot(golden, path.join(work, name));
            installProbe(path.join(work, name));
        }
        const noUnit = path.join(work, "no-unit", "etc/systemd/system");
        for (const link of [`multi-user.target.wants/${FIRST_BOOT_UNIT_NAME}`, `ssh.service.wants/${FIRST_BOOT_UNIT_NAME}`, FIRST_BOOT_UNIT_NAME]) {
            fs.rmSync(path.join(noUnit, link), { force: true });
        }
        // All three at once: each VM is one TCG thread, so one at a time leaves a core idle; three on
        // two cores take each boot about half again as long (2-5 min alone), well inside its deadline.
        await Promise.all(["restore-a", "restore-b", "no-unit"].map(async (name) => {
            booted[name] = await bootRoot(path.join(work, name), work, name);
            log(`${name}: booted and reported in ${(booted[name].elapsedMs / 1000).toFixed(0)} s (deadline ${BOOT_TIMEOUT_MS / 1000} s): ${JSON.stringify(booted[name].probe)}`);
        }));
    });

    after(async () => {
        if (work) await removeWorkDir(work);
    });

    it("the prepared golden carries no host keys, an empty machine-id and no /etc/hostname", () => {
        const golden = path.join(work, "golden");
        assert.deepStrictEqual(fs.readdirSync(path.join(golden, "etc/ssh")).filter((f) => f.startsWith("ssh_host_")), []);
        assert.strictEqual(fs.readFileSync(path.join(golden, "etc/machine-id"), "utf8"), "");
        assert.ok(!fs.existsSync(path.join(golden, "etc/hostname")));
    });

    it("both restores boot with ssh.service active, thanks to the first-boot unit", () => {
        for (const name of ["restore-a", "restore-b"]) {
            assert.deepStrictEqual([booted[name].probe.ssh, booted[name].probe.sshresult], ["active", "success"], `${name}: ssh.service\n${booted[name].console.slice(-2000)}`);
            assert.strictEqual(booted[name].probe.firstboot, "active", `${name}: ${FIRST_BOOT_UNIT_NAME}`);
        }
    });

    it("each restore has host keys of its own", () => {
        const a = hostKeys(booted["restore-a"]);
        const b = hostKeys(booted["restore-b"]);
        assert.ok(a.hostkey_ssh_host_ed25519_key, `restore-a has no ed25519 host key: ${JSON.stringify(a)}`);
        assert.deepStrictEqual(Object.keys(a).sort(), Object.keys(b).sort());
        for (const key of Object.keys(a)) assert.notStrictEqual(a[key], b[key], `${key} is the same in both restores`);
    });

    it("each restore has a machine-id of its own", () => {
        const a = booted["restore-a"].probe.machineid;
        const b = booted["restore-b"].probe.machineid;
        assert.match(a, /^[0-9a-f]{32}$/);
        assert.match(b, /^[0-9a-f]{32}$/);
        assert.notStrictEqual(a, b);
    });

    it("without the first-boot unit the same boot leaves ssh.service failed and no host keys", () => {
        const vm = booted["no-unit"];
        // "failed" once the start limit is hit; on a slow VM it may still be restarting, having failed every time.
        assert.ok(vm.probe.ssh === "failed" || vm.probe.ssh === "activating", `ssh.service is ${vm.probe.ssh}\n${vm.console.slice(-2000)}`);
        assert.strictEqual(vm.probe.sshresult, "exit-code", "its start failed (sshd -t: no host keys)");
        assert.deepStrictEqual(hostKeys(vm), {});
        assert.match(vm.probe.machineid, /^[0-9a-f]{32}$/, "machine-id regenerates on its own, host keys do not");
    });
});
