/**
 * GoldenGuest: one Proxmox VE container restored from a golden archive with
 * its identity reset, driven through the Proxmox VE API with an API token.
 * This file is the dynamic provider and its resource; the inputs and their
 * rules are in goldenGuestInputs.ts, the restore and converge steps in
 * goldenGuestConverge.ts, the API client in pve/.
 *
 * What a restore does not do on its own, and this provider does:
 * - A restore keeps the archived MAC unless `unique=1`: every guest of one
 *   golden would share one MAC. Restore always passes `unique=1`, then checks
 *   that no netN kept the archive's MAC, and resets any that did.
 * - A restore keeps the archived hostname: the restore passes the guest's
 *   hostname, and it is checked afterwards.
 * - A restore regenerates neither SSH host keys nor the machine-id. Only a
 *   golden cleaned for both, with a first-boot unit that makes the keys
 *   (cloudinit/goldenPrepare.ts), gives guests their own identity and a
 *   working sshd, so an archive without the prepared marker in its
 *   description is refused unless the stack says otherwise.
 *
 * The engine never cancels a dynamic provider, so every request and every
 * task wait has its own deadline.
 */
import * as pulumi from "@pulumi/pulumi";
import { converge, createGuest, destroyGuest, observe, scopeOf, strip } from "./goldenGuestConverge";
import {
    DEFAULT_GOLDEN_GUEST_POLICY, GoldenGuestInputs, GoldenGuestObserved, GoldenGuestOutputs, goldenGuestInputProblems, GoldenGuestPolicy, GoldenMountPoint,
} from "./goldenGuestInputs";
import { isMissing } from "./pve/client";
import { containsUnknown } from "./unknowns";

/** A new archive, VMID, node, endpoint or storage is another guest. */
const REPLACE_FIELDS = ["archive", "vmid", "node", "endpoint", "storage"] as const;
const IN_PLACE_FIELDS = ["hostname", "rootfsSizeGiB", "startOnBoot", "tokenId", "tokenSecret", "caBundlePem", "tlsFingerprint", "allowUnpreparedArchive"] as const;

/** What a read saw that the inputs do not want: the property, and what was seen against what is wanted. */
export function goldenGuestDrift(olds: GoldenGuestOutputs, news: GoldenGuestInputs): { property: string; detail: string }[] {
    const seen = olds.observed;
    if (!seen) return [];
    const drift: { property: string; detail: string }[] = [];
    if (!containsUnknown(news.hostname) && seen.hostname !== news.hostname) {
        drift.push({ property: "hostname", detail: `hostname is ${JSON.stringify(seen.hostname)}, wanted ${JSON.stringify(news.hostname)}` });
    }
    if (!containsUnknown(news.rootfsSizeGiB) && news.rootfsSizeGiB > seen.rootfsSizeGiB) {
        drift.push({ property: "rootfsSizeGiB", detail: `rootfs is ${seen.rootfsSizeGiB} GiB, wanted ${news.rootfsSizeGiB}` });
    }
    if (!containsUnknown(news.startOnBoot) && seen.startOnBoot !== news.startOnBoot) {
        drift.push({ property: "startOnBoot", detail: `onboot is ${seen.startOnBoot ? 1 : 0}, wanted ${news.startOnBoot ? 1 : 0}` });
    }
    if (!seen.running) drift.push({ property: "observed.running", detail: "not running" });
    const archived = Object.values(olds.archiveMacs ?? {});
    const macs = Object.values(seen.macs);
    const shared = Object.entries(seen.macs).filter(([, mac]) => !mac || archived.includes(mac) || macs.indexOf(mac) !== macs.lastIndexOf(mac)).map(([key]) => key);
    if (shared.length) drift.push({ property: "observed.macs", detail: `${shared.join(", ")} without a MAC of its own (none, the archive's, or shared)` });
    const missing = containsUnknown(news.mountPoints) ? [] : news.mountPoints.filter((mp) => !Object.values(seen.mountPoints).some((m) => m.path === mp.path && m.sizeGiB >= mp.sizeGiB));
    if (missing.length) drift.push({ property: "mountPoints", detail: `${missing.map((mp) => `${mp.path} (${mp.sizeGiB} GiB)`).join(", ")} missing or smaller` });
    return drift;
}

export function goldenGuestDiff(olds: GoldenGuestOutputs, news: GoldenGuestInputs): { changes: boolean; diffs: string[]; replaces: string[]; deleteBeforeReplace: boolean } {
    const differs = (a: unknown, b: unknown) => containsUnknown(b) || JSON.stringify(a) !== JSON.stringify(b);
    const replaces: string[] = REPLACE_FIELDS.filter((f) => differs(olds[f], news[f]));
    // A removed or moved mount point would lose its volume's data: that is a new guest, shown as a replacement.
    if (containsUnknown(news.mountPoints) || olds.mountPoints.some((old) => !news.mountPoints.some((mp) => mp.path === old.path && mp.storage === old.storage))) {
        replaces.push("mountPoints");
    }
    const changes = new Set<string>([...replaces, ...IN_PLACE_FIELDS.filter((f) => differs(olds[f], news[f]))]);
    if (!replaces.includes("mountPoints") && differs(olds.mountPoints, news.mountPoints)) changes.add("mountPoints");
    if (differs(olds.policy, news.policy)) changes.add("policy");
    // Drift seen by read: the guest no longer is what the inputs say.
    for (const { property } of goldenGuestDrift(olds, news)) changes.add(property);
    // deleteBeforeReplace: the replacement usually takes the same VMID.
    return { changes: changes.size > 0, diffs: [...changes], replaces, deleteBeforeReplace: true };
}

export const goldenGuestProvider: pulumi.dynamic.ResourceProvider = {
    async check(olds: GoldenGuestInputs, news: GoldenGuestInputs) {
        return { inputs: news, failures: goldenGuestInputProblems(news, olds && Object.keys(olds).length ? olds : undefined) };
    },

    async create(inputs: GoldenGuestInputs) {
        const outs = await createGuest(inputs);
        return { id: `${inputs.node}/${inputs.vmid}`, outs };
    },

    async read(id: string, props: GoldenGuestOutputs) {
        const scope = scopeOf(props);
        try {
            const seen = await observe(scope);
            return { id, props: { ...props, observed: strip(seen) } };
        } catch (err) {
            if (isMissing(err)) return { id: "", props: {} };
            throw err;
        }
    },

    async diff(_id: string, olds: GoldenGuestOutputs, news: GoldenGuestInputs) {
        // Drift changes no input, so the plan alone would show an update without saying why.
        const drift = goldenGuestDrift(olds, news);
        if (drift.length) console.log(`GoldenGuest ${olds.hostname} (CT ${olds.vmid}): drifted: ${drift.map((d) => `${d.property}: ${d.detail}`).join("; ")}`);
        return goldenGuestDiff(olds, news);
    },

    async update(_id: string, olds: GoldenGuestOutputs, news: GoldenGuestInputs) {
        const scope = scopeOf(news);
        const observed = await converge(scope, news, olds.archiveMacs);
        return { outs: { ...news, archiveMacs: olds.archiveMacs, observed } };
    },

    async delete(_id: string, props: GoldenGuestOutputs) {
        await destroyGuest(scopeOf(props));
    },
};

export interface GoldenGuestArgs {
    endpoint: pulumi.Input<string>;
    node: pulumi.Input<string>;
    tokenId: pulumi.Input<string>;
    /** The token's secret; made secret here whatever the caller passes. */
    tokenSecret: pulumi.Input<string>;
    caBundlePem?: pulumi.Input<string>;
    tlsFingerprint?: pulumi.Input<string>;
    storage: pulumi.Input<string>;
    archive: pulumi.Input<string>;
    allowUnpreparedArchive?: pulumi.Input<boolean>;
    vmid: pulumi.Input<number>;
    hostname: pulumi.Input<string>;
    rootfsSizeGiB?: pulumi.Input<number>;
    mountPoints?: pulumi.Input<GoldenMountPoint[]>;
    startOnBoot?: pulumi.Input<boolean>;
    policy?: pulumi.Input<GoldenGuestPolicy>;
}

export class GoldenGuest extends pulumi.dynamic.Resource {
    public readonly vmid!: pulumi.Output<number>;
    public readonly hostname!: pulumi.Output<string>;
    public readonly archiveMacs!: pulumi.Output<Record<string, string>>;
    public readonly observed!: pulumi.Output<GoldenGuestObserved>;

    constructor(name: string, args: GoldenGuestArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            goldenGuestProvider,
            name,
            {
                ...args,
                tokenSecret: pulumi.secret(args.tokenSecret),
                caBundlePem: args.caBundlePem ?? "",
                tlsFingerprint: args.tlsFingerprint ?? "",
                allowUnpreparedArchive: args.allowUnpreparedArchive ?? false,
                rootfsSizeGiB: args.rootfsSizeGiB ?? 0,
                mountPoints: args.mountPoints ?? [],
                startOnBoot: args.startOnBoot ?? false,
                policy: args.policy ?? DEFAULT_GOLDEN_GUEST_POLICY,
                archiveMacs: undefined,
                observed: undefined,
            },
            pulumi.mergeOptions(opts, { additionalSecretOutputs: ["tokenSecret"] }),
            "meshstack",
            "GoldenGuest",
        );
    }
}

