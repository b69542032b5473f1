import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { renderGoldenBuildScript, renderGoldenDeleteScript, renderGoldenPrepareScript } from "../cloudinit/goldenPrepare";

/** Rootfs of the throwaway build container; restores get their own size. */
export const GOLDEN_BUILD_ROOTFS_GIB = 8;

export interface GoldenImageArgs {
    /** The Proxmox VE node's SSH address; the build runs there as root (keyctl=1 needs root@pam). */
    sshHost: string;
    /** Private key for root on the node. Secret. */
    sshPrivateKey: pulumi.Input<string>;
    /** Container template volume id, e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst */
    template: string;
    /** VMID of the build container; it exists only during the build. */
    vmid: number;
    /** Storage for the build container's rootfs. */
    storage: string;
    /** Storage the archive is written to. */
    backupStorage: string;
    bridge: string;
    /** Debian packages guests need besides openssh-server and ca-certificates. */
    packages: string[];
}

/**
 * A golden archive built on the Proxmox VE host: a build container from a
 * template (unprivileged, nesting=1,keyctl=1), the project's prepare script
 * (packages, then the identity clean and the first-boot host-key unit), the
 * prepared marker in its description, stopped and archived with vzdump.
 * `archive` is the volume id guests are restored from. A change to the
 * template or the prepare script builds a new archive, which replaces every
 * guest restored from the old one; destroying the image frees its archive.
 */
export class GoldenImage extends pulumi.ComponentResource {
    /** Volume id of the archive, e.g. local:backup/vzdump-lxc-9000-2026_06_09-20_41_10.tar.zst */
    public readonly archive: pulumi.Output<string>;

    constructor(name: string, args: GoldenImageArgs, opts?: pulumi.ComponentResourceOptions) {
        super("meshstack:index:GoldenImage", name, {}, opts);
        const prepareScript = renderGoldenPrepareScript({ packages: args.packages });
        const buildScript = renderGoldenBuildScript({
            vmid: args.vmid, template: args.template, storage: args.storage, rootfsGiB: GOLDEN_BUILD_ROOTFS_GIB, bridge: args.bridge,
            backupStorage: args.backupStorage, hostname: name, prepareScript,
        });
        const build = new command.remote.Command(`${name}-build`, {
            connection: { host: args.sshHost, user: "root", privateKey: pulumi.secret(args.sshPrivateKey) },
            // The script arrives on stdin, so nothing of it shows in the host's process list.
            create: "bash -s",
            stdin: buildScript,
            delete: `bash -c '${renderGoldenDeleteScript().replace(/'/g, `'\\''`)}'`,
        }, { parent: this, replaceOnChanges: ["*"], customTimeouts: { create: "40m" } });
        this.archive = build.stdout.apply((stdout) => stdout.trim().split("\n").pop()!.trim());
        this.registerOutputs({ archive: this.archive });
    }
}
