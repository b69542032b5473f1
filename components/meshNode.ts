import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { ObjectStore, ObjectStoreAccessOutputs } from "./objectStore";
import { AGENT_KEY_PLACEHOLDER, PUBLISH_URL_PLACEHOLDER } from "../cloudinit/nodeBootstrap";
import { RequestedIdentity } from "../lib/certRequest";
import { selectPublicIpv4 } from "../lib/endpoint";
import { publishedMaterialKey } from "../lib/runtimeChannel";
import { DEFAULT_POLL_POLICY, PollPolicy, WgPubkeyPoll } from "../providers/wgPubkeyPoll";
import {
    bootstrapObjectKey,
    deliveredUserData,
    DeliveryChoice,
    DeliveryResult,
    describeDelivery,
    planBootstrapDelivery,
} from "../cloudinit/delivery";
import { BootstrapConfig, qualify } from "../lib/config";
import { linodeTags } from "../lib/environments";
import { instanceLabelBase, labelWithSuffix, NamingContext, RANDOM_SUFFIX_LENGTH } from "../lib/naming";
import { BootstrapObject, BootstrapObjectCleanup } from "../providers/bootstrapObject";
import { PresignedUrl } from "../providers/presignedUrl";
import { BootUrlsCheck } from "../providers/bootUrlsCheck";
import { NodeRebuildGuard } from "../providers/nodeRebuildGuard";
import { PinnedToGeneration } from "../providers/pinnedToGeneration";
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
    /**
     * The node's cloud-config. Treated as secret: it may carry passwords and
     * presigned URLs. It holds PUBLISH_URL_PLACEHOLDER once, where the node's
     * presigned PUT URL goes, and each of AGENT_KEY_PLACEHOLDER's values once,
     * where the agents' key pair goes (the pair current when the instance is
     * made, pinned to its generation).
     */
    cloudConfig: pulumi.Input<string>;
    /**
     * The node makes keys at first boot and publishes public material: where,
     * and how long to wait for it. Its publication is also the proof that it
     * fetched its cloud-config, which ends the bootstrap object's cleanup.
     */
    publish: MeshNodePublish;
    /**
     * Delete the old instance before creating its replacement: for a node
     * whose replacement must not run beside it (a NATS server keeps its
     * server_name and WireGuard address). The label suffix still changes.
     */
    deleteBeforeReplace?: boolean;
    /** Resources whose steps finish before this instance is created or replaced (the NATS image guard). */
    replaceAfter?: pulumi.Resource[];
    /**
     * SSH public keys for root (break-glass). Linode installs them at the
     * instance's creation, so a node whose agent never runs can still be
     * reached; later changes are ignored (`ignoreChanges`: Linode would
     * replace the instance for them), and the agent keeps root's
     * authorized_keys current from the desired state instead. A replacement
     * of an existing instance gets the keys Pulumi's state holds for it, not
     * the current list: the engine substitutes the ignored value from state.
     */
    authorizedKeys: string[];
    /** Firewall attached at creation, so the node is never exposed unfiltered. */
    firewallId?: pulumi.Input<number>;
    /** Linode tags (environment, stack, PR and role); `meshstack` and the stack name are always added. */
    tags?: string[];
    /**
     * Protect the instance (a stateful node): replacing or deleting it then
     * needs `pulumi state unprotect`, and its rebuild guard refuses a change
     * that would rebuild it unless `rebuild.accepted` names that change.
     */
    protect?: boolean;
    /** What a rebuild of this node is named after, and which rebuilds the stack accepts. */
    rebuild: MeshNodeRebuild;
    /** Where user-data too large for Linode Metadata is stored. */
    objectStore: ObjectStore;
    /** Limits and options of bootstrap delivery. */
    bootstrap: BootstrapConfig;
}

export interface MeshNodePublish {
    /** The node's name in the runtime channel. */
    node: string;
    /** The runtime bucket, with the deploy's key (ObjectStore.runtime). */
    runtime: ObjectStoreAccessOutputs;
    /** By name, the certificate requests the node publishes and what each may ask for (none for the hub). */
    expectedRequests: Record<string, RequestedIdentity>;
    /** Where the node logs its first boot, for the timeout hint. */
    bootstrapLogPath: string;
    /** How long `pulumi up` waits for the material. */
    timeoutSeconds: number;
    /** Overrides of the poll schedule; defaults are DEFAULT_POLL_POLICY. */
    pollPolicy?: Partial<Omit<PollPolicy, "timeoutMs">>;
}

export interface MeshNodeRebuild {
    /** meshstack:acceptRebuilds. */
    accepted: string[];
    /** The config key(s) that set the node's image, for messages. */
    imageSource: string;
    /** The image is rolled one node per `up` by another guard (the NATS rollout guard), so it is not this guard's business. */
    imageRolled?: boolean;
}

/** What feeds each rebuild input besides the image, as an operator would look for it. */
const REBUILD_SOURCES = {
    region: qualify("region"),
    userData: "its user-data (a meshstack upgrade, or a key rendered into it: see the README's change matrix)",
};

/** What a node published: its WireGuard public key and certificate requests by name. */
export interface PublishedOutputs {
    publicKey: pulumi.Output<string>;
    requests: pulumi.Output<Record<string, string>>;
}

function orThrow<T>(node: MeshNode, name: string, result: DeliveryResult<T>): T {
    if (!result.ok) throw new pulumi.ResourceError(`MeshNode ${name}: ${result.error}`, node);
    return result.value;
}

/** The cloud-config with each placeholder (which must occur exactly once) replaced by its value. */
function filled(node: MeshNode, name: string, template: string, values: [placeholder: string, value: string][]): string {
    return values.reduce((text, [placeholder, value]) => {
        const parts = text.split(placeholder);
        if (parts.length !== 2) throw new pulumi.ResourceError(`MeshNode ${name}: the cloud-config holds the placeholder ${placeholder} ${parts.length - 1} times; expected once`, node);
        return parts.join(value);
    }, template);
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
    /** The instance's boot generation: renewed by every input that replaces it. */
    public readonly generation: pulumi.Output<string>;
    /** The material this instance published. */
    public readonly published: PublishedOutputs;

    constructor(name: string, args: MeshNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("meshstack:index:MeshNode", name, {}, opts);
        const template = pulumi.secret(args.cloudConfig);
        // Linode labels are unique per account: a replacement is created
        // before its predecessor is deleted, so it needs a label of its own.
        // The suffix changes exactly when an input that forces replacement
        // does, so it is also the instance's boot generation. It keys on the
        // user-data without the publish URL, which is signed per generation,
        // and without the agents' key, which is pinned per generation.
        // Not on the SSH keys: the instance ignores their changes.
        const keepers = {
            image: args.image,
            region: args.region,
            userData: pulumi.unsecret(template.apply(sha256Hex)),
        };
        // The label is replaced first when a node is rebuilt: it waits for the guard, so a refused rebuild replaces nothing.
        const guard = new NodeRebuildGuard(`${name}-rebuild-guard`, {
            inputs: keepers,
            policy: {
                node: name,
                sources: { ...REBUILD_SOURCES, image: args.rebuild.imageSource },
                rolled: args.rebuild.imageRolled ? ["image"] : [],
                refuse: args.protect ?? false,
                accepted: args.rebuild.accepted,
            },
        }, { parent: this });
        const suffix = new random.RandomString(`${name}-label`, {
            length: RANDOM_SUFFIX_LENGTH, upper: false, special: false, keepers,
        }, { parent: this, dependsOn: [guard] });
        this.generation = suffix.result;

        const store = args.objectStore;
        const publish = args.publish;
        const publishedKey = suffix.result.apply((generation) => publishedMaterialKey(args.naming.stack, publish.node, generation));
        const putUrl = new PresignedUrl(`${name}-publish-url`, {
            ...publish.runtime,
            key: publishedKey,
            method: "PUT",
            expiresInSeconds: args.bootstrap.urlExpirySeconds,
            keepers: { generation: suffix.result },
        }, { parent: this });
        // A rotated key reaches running nodes through their desired state (lib/agentKey.ts); a new instance boots with the current one.
        const agentKey = new PinnedToGeneration(`${name}-first-boot-agent-key`, {
            generation: suffix.result,
            values: { ...store.agentCredentials },
        }, { parent: this });
        const cloudConfig = pulumi.secret(pulumi.all([template, putUrl.url, agentKey.values]).apply(([text, url, key]) => filled(this, name, text, [
            [PUBLISH_URL_PLACEHOLDER, url],
            [AGENT_KEY_PLACEHOLDER.accessKeyId, key.accessKeyId],
            [AGENT_KEY_PLACEHOLDER.secretAccessKey, key.secretAccessKey],
        ])));
        // A digest of high-entropy secrets reveals none of them; it names objects and triggers re-signing.
        const contentHash = pulumi.unsecret(cloudConfig.apply(sha256Hex));

        this.bootstrapDelivery = pulumi.unsecret(cloudConfig.apply((text) => orThrow(this, name, planBootstrapDelivery(text, args.image, args.bootstrap))));
        this.bootstrapDelivery.apply((choice) => pulumi.log.info(`${name}: ${describeDelivery(choice)}`, this));

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
            label: suffix.result.apply((s) => labelWithSuffix(instanceLabelBase(args.naming, name), s)),
            region: args.region,
            type: args.instanceType,
            image: args.image,
            authorizedKeys: args.authorizedKeys,
            firewallId: args.firewallId,
            // @pulumi/linode does not mark user-data secret itself; the pointer carries a live URL.
            metadatas: [{ userData: pulumi.secret(userData) }],
            tags: linodeTags(["meshstack", args.naming.stack, ...(args.tags ?? [])]),
        }, { parent: this, additionalSecretOutputs: ["metadatas"], dependsOn: [object, ...(args.replaceAfter ?? [])], protect: args.protect, deleteBeforeReplace: args.deleteBeforeReplace, ignoreChanges: ["authorizedKeys"] });

        this.instanceId = this.instance.id.apply(Number);
        this.label = this.instance.label;
        this.ipv4s = this.instance.ipv4s;

        // The URLs this instance's user-data carries: the publish URL, and the object's behind an #include pointer.
        // Both are ISO 8601 from toISOString, so they compare as strings.
        const expiresAt = pulumi.all([putUrl.expiresAt, url.expiresAt, this.bootstrapDelivery]).apply(([put, get, choice]) =>
            choice.method === "object" && get < put ? get : put);
        const bootUrls = new BootUrlsCheck(`${name}-boot-urls`, {
            instanceId: this.instance.id,
            expiresAt,
            nodeLabel: this.instance.label,
            labelResource: `${name}-label`,
        }, { parent: this, dependsOn: [this.instance] });
        // After the URL check: an instance that can never publish fails the `up` at once,
        // and a failed `up` still waits for every step in flight, this wait included.
        new BootstrapObjectCleanup(`${name}-bootstrap-cleanup`, {
            ...store.access,
            key: object.key,
            stored: object.stored,
            instanceId: this.instance.id,
            publishedBucket: publish.runtime.bucket,
            publishedKey,
            deadlineSeconds: publish.timeoutSeconds,
        }, { parent: this, dependsOn: [this.instance, bootUrls] });
        const primary = this.instance.ipAddress;
        const poll = new WgPubkeyPoll(`${name}-published`, {
            ...publish.runtime,
            key: publishedKey,
            node: publish.node,
            // A new instance publishes new material: the poll runs again, and only its document counts.
            instanceId: this.instance.id,
            expectedRequests: publish.expectedRequests,
            nodeLabel: this.label,
            nodeAddress: pulumi.all([this.ipv4s, primary]).apply(([ips, main]) => selectPublicIpv4(ips, main)),
            bootstrapLogPath: publish.bootstrapLogPath,
            policy: { ...DEFAULT_POLL_POLICY, ...publish.pollPolicy, timeoutMs: publish.timeoutSeconds * 1000 },
        }, { parent: this, dependsOn: [this.instance, bootUrls] });
        this.published = { publicKey: poll.publicKey, requests: poll.requests };
        this.registerOutputs({ instanceId: this.instanceId, label: this.label, ipv4s: this.ipv4s, bootstrapDelivery: this.bootstrapDelivery, generation: this.generation });
    }
}
