import * as crypto from "crypto";
import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { ObjectStore } from "./objectStore";
import { BootstrapConfig } from "../lib/config";
import { labelWithSuffix, linodeLabelBase, NamingContext, RANDOM_SUFFIX_LENGTH } from "../lib/naming";

export interface MeshNodeArgs {
    /** Project and stack, for physical names. */
    naming: NamingContext;
    /** Linode region. */
    region: string;
    /** Linode type, e.g. g6-nanode-1. */
    instanceType: string;
    /** Linode image, e.g. linode/debian12. */
    image: string;
    /** The node's cloud-config. Treated as secret: it may carry keys, passwords and presigned URLs. */
    cloudConfig: pulumi.Input<string>;
    /** SSH public keys for root (break-glass). */
    authorizedKeys: string[];
    /** Firewall attached at creation, so the node is never exposed unfiltered. */
    firewallId?: pulumi.Input<number>;
    /** Linode tags. */
    tags?: string[];
    /** Where user-data too large for Linode Metadata is stored. */
    objectStore: ObjectStore;
    /** Limits and options of bootstrap delivery. */
    bootstrap: BootstrapConfig;
}

/**
 * One Linode instance with its user-data delivered through Linode Metadata.
 * Every instance the stack creates goes through here, so labels, secrecy of
 * user-data and replacement behaviour are the same for all of them.
 */
export class MeshNode extends pulumi.ComponentResource {
    public readonly instance: linode.Instance;
    public readonly instanceId: pulumi.Output<number>;
    public readonly label: pulumi.Output<string>;
    /** All IPv4 addresses Linode assigned (public and private mixed). */
    public readonly ipv4s: pulumi.Output<string[]>;

    constructor(name: string, args: MeshNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("meshstack:index:MeshNode", name, {}, opts);
        const cloudConfig = pulumi.secret(args.cloudConfig);
        // Linode labels are unique per account: a replacement is created
        // before its predecessor is deleted, so it needs a label of its own.
        // The suffix changes exactly when an input that forces replacement does.
        const suffix = new random.RandomString(`${name}-label`, {
            length: RANDOM_SUFFIX_LENGTH, upper: false, special: false,
            keepers: {
                image: args.image,
                region: args.region,
                authorizedKeys: args.authorizedKeys.join("\n"),
                userData: cloudConfig.apply((text) => crypto.createHash("sha256").update(text).digest("hex")),
            },
        }, { parent: this });
        const userData = cloudConfig.apply((text) => Buffer.from(text, "utf8").toString("base64"));
        this.instance = new linode.Instance(`${name}-instance`, {
            label: suffix.result.apply((s) => labelWithSuffix(linodeLabelBase(args.naming, name), s)),
            region: args.region,
            type: args.instanceType,
            image: args.image,
            authorizedKeys: args.authorizedKeys,
            firewallId: args.firewallId,
            // @pulumi/linode does not mark user-data secret itself.
            metadatas: [{ userData: pulumi.secret(userData) }],
            tags: ["meshstack", args.naming.stack, ...(args.tags ?? [])],
        }, { parent: this, additionalSecretOutputs: ["metadatas"] });
        this.instanceId = this.instance.id.apply(Number);
        this.label = this.instance.label;
        this.ipv4s = this.instance.ipv4s;
        this.registerOutputs({ instanceId: this.instanceId, label: this.label, ipv4s: this.ipv4s });
    }
}
