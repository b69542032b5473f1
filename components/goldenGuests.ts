import * as pulumi from "@pulumi/pulumi";
import { ProxmoxConfig } from "../lib/config";
import { GoldenGuest } from "../providers/goldenGuest";
import { DEFAULT_GOLDEN_GUEST_POLICY, GoldenGuestPolicy } from "../providers/goldenGuestInputs";
import { GoldenImage } from "./goldenImage";

export interface GoldenGuestsArgs {
    /** The Proxmox VE part of the stack config (meshstack:proxmox*). */
    proxmox: ProxmoxConfig;
    /** Retry and wait bounds; DEFAULT_GOLDEN_GUEST_POLICY unless a test shortens them. */
    policy?: GoldenGuestPolicy;
}

/** What the stack reports per guest. */
export interface GoldenGuestSummary {
    vmid: number;
    node: string;
    /** netN -> MAC, each its own (never the archive's). */
    macs: Record<string, string>;
    ipv4: string;
}

/**
 * Golden-image guests on Proxmox VE: one GoldenGuest per configured guest,
 * restored from meshstack:proxmoxArchive or from a GoldenImage the stack
 * builds (meshstack:proxmoxGoldenTemplate). Guests are independent
 * resources, so the engine may work on several at once; each one's API
 * calls are strictly sequential inside its provider.
 */
export class GoldenGuests extends pulumi.ComponentResource {
    public readonly golden?: GoldenImage;
    /** The archive every guest is restored from. */
    public readonly archive: pulumi.Output<string>;
    public readonly guests: GoldenGuest[];
    /** hostname -> summary. */
    public readonly summary: pulumi.Output<Record<string, GoldenGuestSummary>>;

    constructor(name: string, args: GoldenGuestsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("meshstack:index:GoldenGuests", name, {}, opts);
        const pve = args.proxmox;
        if (pve.golden) {
            this.golden = new GoldenImage(`${name}-golden`, {
                sshHost: pve.golden.sshHost, sshPrivateKey: pulumi.secret(pve.golden.sshPrivateKey), template: pve.golden.template, vmid: pve.golden.vmid,
                storage: pve.storage, backupStorage: pve.golden.backupStorage, bridge: pve.golden.bridge, packages: pve.golden.packages,
            }, { parent: this });
            this.archive = this.golden.archive;
        } else {
            this.archive = pulumi.output(pve.archive!);
        }
        const tokenSecret = pulumi.secret(pve.tokenSecret);
        this.guests = pve.guests.map((guest) => new GoldenGuest(`${name}-${guest.hostname}`, {
            endpoint: pve.endpoint, node: pve.node, tokenId: pve.tokenId, tokenSecret,
            caBundlePem: pve.tls.caBundlePem ?? "", tlsFingerprint: pve.tls.fingerprint ?? "",
            storage: pve.storage, archive: this.archive,
            // A golden the stack built carries the marker; a given archive is checked against it.
            allowUnpreparedArchive: pve.golden ? false : pve.allowUnpreparedArchive,
            vmid: guest.vmid, hostname: guest.hostname, rootfsSizeGiB: guest.rootfsGiB ?? 0,
            mountPoints: guest.mountPoints.map((mp) => ({ path: mp.path, sizeGiB: mp.sizeGiB, storage: mp.storage ?? pve.storage })),
            startOnBoot: guest.startOnBoot,
            policy: args.policy ?? DEFAULT_GOLDEN_GUEST_POLICY,
        }, { parent: this }));
        this.summary = pulumi.all(this.guests.map((g) => pulumi.all([g.hostname, g.vmid, g.observed]))).apply((rows) =>
            Object.fromEntries(rows.map(([hostname, vmid, observed]) => [hostname, { vmid, node: pve.node, macs: observed?.macs ?? {}, ipv4: observed?.ipv4 ?? "" }])),
        );
        this.registerOutputs({ archive: this.archive, summary: this.summary });
    }
}
