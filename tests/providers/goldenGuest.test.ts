/**
 * The GoldenGuest provider's diff: inputs changed, and drift a read saw.
 */
import * as assert from "assert";
import { goldenGuestDiff, goldenGuestDrift } from "../../providers/goldenGuest";
import { DEFAULT_GOLDEN_GUEST_POLICY, GoldenGuestInputs, GoldenGuestOutputs } from "../../providers/goldenGuestInputs";

const INPUTS: GoldenGuestInputs = {
    endpoint: "https://pve.example.net:8006", node: "pve", tokenId: "meshstack@pve!deploy", tokenSecret: "00000000-0000-4000-8000-000000000000",
    caBundlePem: "", tlsFingerprint: "", storage: "local-lvm", archive: "local:backup/vzdump-lxc-9000.tar.zst", allowUnpreparedArchive: false,
    vmid: 101, hostname: "web-1", rootfsSizeGiB: 16, mountPoints: [{ path: "/srv/data", sizeGiB: 8, storage: "local-lvm" }], startOnBoot: true,
    policy: DEFAULT_GOLDEN_GUEST_POLICY,
};

/** State as create leaves it: the guest is what the inputs say. */
function converged(): GoldenGuestOutputs {
    return {
        ...INPUTS, archiveMacs: { net0: "BC:24:11:00:00:01" },
        observed: {
            hostname: "web-1", macs: { net0: "BC:24:11:00:00:02" }, rootfsSizeGiB: 16, mountPoints: { mp0: { path: "/srv/data", sizeGiB: 8 } },
            startOnBoot: true, running: true, ipv4: "10.0.0.5",
        },
    };
}

function drifted(observed: Partial<GoldenGuestOutputs["observed"]>): GoldenGuestOutputs {
    const olds = converged();
    return { ...olds, observed: { ...olds.observed, ...observed } };
}

describe("GoldenGuest provider: diff and drift", () => {
    it("a converged guest has no drift and no changes", () => {
        assert.deepStrictEqual([goldenGuestDrift(converged(), INPUTS), goldenGuestDiff(converged(), INPUTS).changes], [[], false]);
    });

    it("names a hostname changed by hand, with what was seen and what is wanted", () => {
        assert.deepStrictEqual(goldenGuestDrift(drifted({ hostname: "renamed" }), INPUTS), [{ property: "hostname", detail: 'hostname is "renamed", wanted "web-1"' }]);
    });

    it("names onboot switched off by hand", () => {
        assert.deepStrictEqual(goldenGuestDrift(drifted({ startOnBoot: false }), INPUTS), [{ property: "startOnBoot", detail: "onboot is 0, wanted 1" }]);
    });

    it("names a rootfs smaller than wanted", () => {
        assert.deepStrictEqual(goldenGuestDrift(drifted({ rootfsSizeGiB: 8 }), INPUTS), [{ property: "rootfsSizeGiB", detail: "rootfs is 8 GiB, wanted 16" }]);
    });

    it("names a stopped guest", () => {
        assert.deepStrictEqual(goldenGuestDrift(drifted({ running: false }), INPUTS), [{ property: "observed.running", detail: "not running" }]);
    });

    it("names a netN that carries the archive's MAC", () => {
        assert.deepStrictEqual(goldenGuestDrift(drifted({ macs: { net0: "BC:24:11:00:00:01" } }), INPUTS).map((d) => d.property), ["observed.macs"]);
    });

    it("names two netN sharing one MAC, both of them", () => {
        const drift = goldenGuestDrift(drifted({ macs: { net0: "BC:24:11:00:00:07", net1: "BC:24:11:00:00:07" } }), INPUTS);
        assert.deepStrictEqual(drift, [{ property: "observed.macs", detail: "net0, net1 without a MAC of its own (none, the archive's, or shared)" }]);
    });

    it("names a mount point that went missing", () => {
        assert.deepStrictEqual(goldenGuestDrift(drifted({ mountPoints: {} }), INPUTS), [{ property: "mountPoints", detail: "/srv/data (8 GiB) missing or smaller" }]);
    });

    it("lists the drifted properties in diffs, as an in-place update", () => {
        const diff = goldenGuestDiff(drifted({ hostname: "renamed", running: false }), INPUTS);
        assert.deepStrictEqual([diff.changes, diff.diffs, diff.replaces], [true, ["hostname", "observed.running"], []]);
    });

    it("lists a changed input in diffs beside a replacement it causes", () => {
        const diff = goldenGuestDiff(converged(), { ...INPUTS, vmid: 102, hostname: "web-2" });
        assert.deepStrictEqual([diff.diffs, diff.replaces], [["vmid", "hostname"], ["vmid"]]);
    });

    it("names a mount point smaller than wanted, and each of two missing ones", () => {
        const wanted = { ...INPUTS, mountPoints: [...INPUTS.mountPoints, { path: "/var/log", sizeGiB: 2, storage: "local-lvm" }] };
        const smaller = drifted({ mountPoints: { mp0: { path: "/srv/data", sizeGiB: 4 }, mp1: { path: "/var/lib", sizeGiB: 8 } } });
        assert.deepStrictEqual(goldenGuestDrift(smaller, wanted), [{ property: "mountPoints", detail: "/srv/data (8 GiB), /var/log (2 GiB) missing or smaller" }]);
    });

    it("state without an observation (written before any read) has no drift", () => {
        const { observed: _observed, ...olds } = converged();
        assert.deepStrictEqual(goldenGuestDrift(olds as GoldenGuestOutputs, INPUTS), []);
    });

    it("a new token is an in-place change", () => {
        const diff = goldenGuestDiff(converged(), { ...INPUTS, tokenId: "meshstack@pve!other" });
        assert.deepStrictEqual([diff.diffs, diff.replaces], [["tokenId"], []]);
    });

    it("a new policy is an in-place change", () => {
        const diff = goldenGuestDiff(converged(), { ...INPUTS, policy: { ...INPUTS.policy, requestTimeoutMs: 1_000 } });
        assert.deepStrictEqual([diff.diffs, diff.replaces], [["policy"], []]);
    });

    it("a mount point grown or added is an in-place change, from the inputs alone", () => {
        // No observation: the change is seen in the inputs, not as drift.
        const { observed: _observed, ...olds } = converged();
        const grown = [{ ...INPUTS.mountPoints[0], sizeGiB: 12 }, { path: "/var/log", sizeGiB: 2, storage: "local-lvm" }];
        const diff = goldenGuestDiff(olds as GoldenGuestOutputs, { ...INPUTS, mountPoints: grown });
        assert.deepStrictEqual([diff.diffs, diff.replaces], [["mountPoints"], []]);
    });

    it("removing one of two mount points replaces the guest", () => {
        const two = [...INPUTS.mountPoints, { path: "/var/log", sizeGiB: 2, storage: "local-lvm" }];
        const diff = goldenGuestDiff({ ...converged(), mountPoints: two }, { ...INPUTS, mountPoints: [two[1]] });
        assert.deepStrictEqual(diff.replaces, ["mountPoints"]);
    });

    it("a removed mount point replaces the guest, deleting it first (the replacement takes the same VMID)", () => {
        const diff = goldenGuestDiff(converged(), { ...INPUTS, mountPoints: [] });
        assert.deepStrictEqual([diff.diffs, diff.replaces, diff.deleteBeforeReplace], [["mountPoints"], ["mountPoints"], true]);
    });

    it("a mount point moved to another storage replaces the guest", () => {
        const moved = [{ ...INPUTS.mountPoints[0], storage: "fast" }];
        assert.deepStrictEqual(goldenGuestDiff(converged(), { ...INPUTS, mountPoints: moved }).replaces, ["mountPoints"]);
    });

    it("a mount point at another path replaces the guest", () => {
        const moved = [{ ...INPUTS.mountPoints[0], path: "/srv/other" }];
        assert.deepStrictEqual(goldenGuestDiff(converged(), { ...INPUTS, mountPoints: moved }).replaces, ["mountPoints"]);
    });
});
