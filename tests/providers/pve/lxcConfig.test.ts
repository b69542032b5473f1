/**
 * Reading a container's config, against replies shaped as Proxmox VE's
 * published API schema says (tests/contracts/pve-api-lxc.json).
 */
import * as assert from "assert";
import { macsOf, mountPointsOf, parseArchivedConfig, parseProperties, readLxcConfig, sizeGiB } from "../../../providers/pve/lxcConfig";

describe("PVE config: readLxcConfig", () => {
    it("reads onboot 1 (the schema's boolean as an integer) as start on boot", () => {
        assert.strictEqual(readLxcConfig({ onboot: 1, digest: "d" }).onboot, true);
    });

    it("reads onboot 0 as no start on boot", () => {
        assert.strictEqual(readLxcConfig({ onboot: 0, digest: "d" }).onboot, false);
    });

    it("reads an absent onboot as its default, no start on boot", () => {
        assert.strictEqual(readLxcConfig({ digest: "d" }).onboot, false);
    });

    it("refuses onboot as text, naming the key, the value and what the schema allows", () => {
        assert.throws(() => readLxcConfig({ onboot: "1" }), /config's onboot with "1"; its API schema allows the integers 0 and 1 \(a boolean\)/);
    });

    it("keeps the string keys it reads (hostname, rootfs, netN, mpN, lock, digest) and leaves the numbers out", () => {
        const config = { hostname: "web-1", rootfs: "local-lvm:vm-1-disk-0,size=8G", net0: "name=eth0", mp3: "local-lvm:vm-1-disk-1,mp=/srv", lock: "create", digest: "d", memory: 2048, cores: 2 };
        const { memory: _m, cores: _c, ...strings } = config;
        assert.deepStrictEqual(readLxcConfig(config).strings, strings);
    });

    it("refuses a hostname that is not a string, naming the key", () => {
        assert.throws(() => readLxcConfig({ hostname: 7 }), /config's hostname with 7; its API schema allows a string/);
    });
});

describe("PVE config: property and size strings", () => {
    it("reads key=value items, a bare item as the default key's value", () => {
        assert.deepStrictEqual(parseProperties("local-lvm:vm-101-disk-0,size=8G,mp=/srv", "volume"), { volume: "local-lvm:vm-101-disk-0", size: "8G", mp: "/srv" });
    });

    it("keeps an = inside a value", () => {
        assert.deepStrictEqual(parseProperties("name=eth0,ip=dhcp,tag=a=b", "name"), { name: "eth0", ip: "dhcp", tag: "a=b" });
    });

    it("reads sizes in GiB, by unit", () => {
        assert.deepStrictEqual(["8G", "1T", "512M", "1048576K", "2147483648", "1.5G"].map(sizeGiB), [8, 1024, 0.5, 1, 2, 1.5]);
    });

    it("reads a size it does not know as 0", () => {
        assert.deepStrictEqual(["", "8GB", "G", "-1G", undefined].map(sizeGiB), [0, 0, 0, 0, 0]);
    });
});

describe("PVE config: MACs and mount points", () => {
    const config = {
        net1: "name=eth1,bridge=vmbr1,hwaddr=bc:24:11:00:00:02", net0: "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp", net2: "name=eth2,bridge=vmbr2",
        netx: "name=ethx,hwaddr=BC:24:11:00:00:03", mp0: "local-lvm:vm-101-disk-1,mp=/srv/data,size=8G", mp1: "local-lvm:vm-101-disk-2,size=512M", mpx: "x,mp=/x,size=1G",
        rootfs: "local-lvm:vm-101-disk-0,size=16G",
    };

    it("reads each netN's MAC, upper case and in key order, \"\" for none", () => {
        assert.deepStrictEqual(Object.entries(macsOf(config)), [["net0", "BC:24:11:00:00:01"], ["net1", "BC:24:11:00:00:02"], ["net2", ""]]);
    });

    it("reads each mpN's path and size, \"\" for a path it lacks", () => {
        assert.deepStrictEqual(mountPointsOf(config), { mp0: { path: "/srv/data", sizeGiB: 8 }, mp1: { path: "", sizeGiB: 0.5 } });
    });
});

describe("PVE config: parseArchivedConfig", () => {
    it("reads the description from the comment lines, percent-decoded, and the keys from the rest", () => {
        const text = "#meshstack-golden-prepared v1\n#built%20by meshstack\narch: amd64\nhostname: meshstack-golden\nnet0: name=eth0,hwaddr=BC:24:11:63:43:F4\n";
        assert.deepStrictEqual(parseArchivedConfig(text), {
            description: "meshstack-golden-prepared v1\nbuilt by meshstack",
            config: { arch: "amd64", hostname: "meshstack-golden", net0: "name=eth0,hwaddr=BC:24:11:63:43:F4" },
        });
    });

    it("keeps a comment that is not valid percent-encoding as it is", () => {
        assert.strictEqual(parseArchivedConfig("#100% prepared\n").description, "100% prepared");
    });

    it("stops at the first snapshot section: its keys are not the current config", () => {
        assert.deepStrictEqual(parseArchivedConfig("hostname: now\n[snap1]\nhostname: then\n").config, { hostname: "now" });
    });

    it("splits each line at its first \": \", ignoring lines without one", () => {
        assert.deepStrictEqual(parseArchivedConfig("description: a: b\nnonsense\n\n").config, { description: "a: b" });
    });

    it("reads nothing from an empty answer", () => {
        assert.deepStrictEqual(parseArchivedConfig(""), { description: "", config: {} });
    });
});
