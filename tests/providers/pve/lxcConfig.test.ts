/**
 * Reading a container's config, against replies shaped as Proxmox VE's
 * published API schema says (tests/contracts/pve-api-lxc.json).
 */
import * as assert from "assert";
import { readLxcConfig } from "../../../providers/pve/lxcConfig";

describe("readLxcConfig", () => {
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
