import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { ObjectStore } from "./objectStore";
import {
    bootstrapObjectKey,
    deliveredUserData,
    DeliveryChoice,
    DeliveryResult,
    describeDelivery,
    planBootstrapDelivery,
} from "../cloudinit/delivery";
import { BootstrapConfig } from "../lib/config";
import { BOOTSTRAP_CLEANUP_DELAY_DEFAULT_SECONDS } from "../lib/limits";
import { linodeTags } from "../lib/environments";
import { labelWithSuffix, linodeLabelBase, NamingContext, RANDOM_SUFFIX_LENGTH } from "../lib/naming";
import { BootstrapObject, BootstrapObjectCleanup } from "../providers/bootstrapObject";
import { PresignedUrl } from "../providers/presignedUrl";
import { sha256Hex } from "../lib/digest";

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
    /** Linode tags (environment, stack, PR and role); `meshstack` and the stack name are always added. */
    tags?: string[];
    /** Protect the instance (a stateful node): replacing or deleting it then needs `pulumi state unprotect`. */
    protect?: boolean;
    /** Where user-data too large for Linode Metadata is stored. */
    objectStore: ObjectStore;
    /** Limits and options of bootstrap delivery. */
    bootstrap: BootstrapConfig;
}

function orThrow<T>(node: MeshNode, name: string, result: DeliveryResult<T>): T {
    if (!result.ok) throw new pulumi.ResourceError(`MeshNode ${name}: ${result.error}`, node);
    return result.value;
}

/**
 * One Linode instance whose cloud-config reaches it through Linode Metadata:
 * inline, gzipped, or from the bucket behind an `#include` pointer
 * (cloudinit/delivery.ts decides). Every instance the stack creates goes
 * through here, so labels, secrecy of user-data, bootstrap delivery and
 * replacement behaviour are the same for all of them.
 *
 * The bootstrap object, its URL and its cleanup exist for every node: which
 * method a node gets depends on content that is often unknown at preview,
 * and the resource graph must not. They do nothing unless the method is object.
 *
 * On instance replacement the label suffix changes, which changes the
 * object key: the replacement gets a fresh upload, a fresh URL and its own
 * cleanup, and the old object's resource is deleted with the old instance.
 */
export class MeshNode extends pulumi.ComponentResource {
    public readonly instance: linode.Instance;
    public readonly instanceId: pulumi.Output<number>;
    public readonly label: pulumi.Output<string>;
    /** All IPv4 addresses Linode assigned (public and private mixed). */
    public readonly ipv4s: pulumi.Output<string[]>;
    /** How the cloud-config is delivered and the sizes behind the choice (not secret). */
    public readonly bootstrapDelivery: pulumi.Output<DeliveryChoice>;

    constructor(name: string, args: MeshNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("meshstack:index:MeshNode", name, {}, opts);
        const cloudConfig = pulumi.secret(args.cloudConfig);
        // A digest of high-entropy secrets reveals none of them; it names objects and triggers re-signing.
        const contentHash = pulumi.unsecret(cloudConfig.apply(sha256Hex));
        // Linode labels are unique per account: a replacement is created
        // before its predecessor is deleted, so it needs a label of its own.
        // The suffix changes exactly when an input that forces replacement does.
        const suffix = new random.RandomString(`${name}-label`, {
            length: RANDOM_SUFFIX_LENGTH, upper: false, special: false,
            keepers: {
                image: args.image,
                region: args.region,
                authorizedKeys: args.authorizedKeys.join("\n"),
                userData: contentHash,
            },
        }, { parent: this });

        this.bootstrapDelivery = pulumi.unsecret(cloudConfig.apply((text) => orThrow(this, name, planBootstrapDelivery(text, args.image, args.bootstrap))));
        this.bootstrapDelivery.apply((choice) => pulumi.log.info(`${name}: ${describeDelivery(choice)}`, this));

        const store = args.objectStore;
        const object = new BootstrapObject(`${name}-bootstrap-object`, {
            ...store.access,
            key: pulumi.all([suffix.result, contentHash]).apply(([generation, hash]) =>
                bootstrapObjectKey({ prefix: store.bootstrapPrefix, stack: args.naming.stack, node: name, generation, contentSha256: hash })),
            content: cloudConfig,
            store: this.bootstrapDelivery.apply((choice) => choice.method === "object"),
        }, { parent: this });
        // Signed after the upload; re-signed only when the object or the
        // instance generation changes, so a rerun leaves user-data alone and a
        // replacement instance never boots with an expired URL.
        const url = new PresignedUrl(`${name}-bootstrap-url`, {
            ...store.access,
            key: object.key,
            method: "GET",
            expiresInSeconds: args.bootstrap.urlExpirySeconds,
            keepers: { contentSha256: contentHash, generation: suffix.result },
        }, { parent: this });

        const userData = pulumi.all([cloudConfig, this.bootstrapDelivery, url.url]).apply(([text, choice, objectUrl]) =>
            orThrow(this, name, deliveredUserData(text, choice, objectUrl)));
        this.instance = new linode.Instance(`${name}-instance`, {
            label: suffix.result.apply((s) => labelWithSuffix(linodeLabelBase(args.naming, name), s)),
            region: args.region,
            type: args.instanceType,
            image: args.image,
            authorizedKeys: args.authorizedKeys,
            firewallId: args.firewallId,
            // @pulumi/linode does not mark user-data secret itself; the pointer carries a live URL.
            metadatas: [{ userData: pulumi.secret(userData) }],
            tags: linodeTags(["meshstack", args.naming.stack, ...(args.tags ?? [])]),
        }, { parent: this, additionalSecretOutputs: ["metadatas"], dependsOn: [object], protect: args.protect });

        new BootstrapObjectCleanup(`${name}-bootstrap-cleanup`, {
            ...store.access,
            key: object.key,
            stored: object.stored,
            instanceId: this.instance.id,
            delaySeconds: args.bootstrap.cleanupDelaySeconds ?? BOOTSTRAP_CLEANUP_DELAY_DEFAULT_SECONDS,
        }, { parent: this, dependsOn: [this.instance] });

        this.instanceId = this.instance.id.apply(Number);
        this.label = this.instance.label;
        this.ipv4s = this.instance.ipv4s;
        this.registerOutputs({ instanceId: this.instanceId, label: this.label, ipv4s: this.ipv4s, bootstrapDelivery: this.bootstrapDelivery });
    }
}
