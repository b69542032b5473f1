import * as aws from "@pulumi/aws";
import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { bucketNameBase, NamingContext, objectStorageKeyLabel, RANDOM_SUFFIX_LENGTH } from "../lib/naming";
import { ObjectStoreAccess, S3KeyPair } from "../providers/s3Args";
import { AgentKeyRevoker } from "../providers/agentKeyRollout";

/** ObjectStoreAccess as the component produces it: every field an Output. */
export type ObjectStoreAccessOutputs = { [K in keyof ObjectStoreAccess]: pulumi.Output<string> };

export interface ObjectStoreArgs {
    /** Project and stack, for physical names. */
    naming: NamingContext;
    /** `linode`: Linode Object Storage through @pulumi/linode. `s3`: any S3-compatible endpoint through @pulumi/aws. */
    kind: "linode" | "s3";
    /** Linode Object Storage region (kind linode) or SigV4 signing region (kind s3). */
    region: string;
    /** S3 endpoint URL; required for kind s3, ignored for kind linode. */
    endpoint?: string;
    /** Key prefix for bootstrap objects; the lifecycle rule expires objects under it. */
    bootstrapPrefix: string;
    /** Days after which the lifecycle rule expires bootstrap objects. */
    bootstrapObjectExpiryDays: number;
    /** Tags for the bucket where the store takes them (S3; Linode buckets have none, their name carries the stack). */
    tags?: string[];
    /** Protect the buckets (they hold state, and every node reads its desired state from one): deleting or replacing them then needs `pulumi state unprotect`. */
    protect?: boolean;
    /**
     * Kind s3 only: the key pair the deploy signs bootstrap URLs with. An S3
     * store's IAM is outside this stack, so the operator supplies a key
     * already scoped to the bucket (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
     */
    s3Credentials?: S3KeyPair;
    /**
     * Kind s3 only: the key pair the nodes' agents read the runtime bucket
     * with (MESHSTACK_AGENT_ACCESS_KEY_ID / MESHSTACK_AGENT_SECRET_ACCESS_KEY):
     * read-only, on the runtime bucket alone.
     */
    s3AgentCredentials?: S3KeyPair;
    /**
     * Kind linode: which agents' key to make (meshstack:agentKeyGeneration,
     * 1 if unset). A new generation is a new key; the old one is deleted at
     * the end of the `up`, after every node reported the new one (MeshRuntime).
     */
    agentKeyGeneration?: number;
}

/**
 * The private buckets nodes rendezvous through. The bootstrap bucket holds
 * what carries secrets (large user-data) and no node holds a key for it:
 * each node fetches its own object through a presigned GET. The runtime
 * bucket (lib/runtimeChannel.ts) holds public material only: what nodes
 * publish at first boot (through presigned PUTs) and the desired states
 * their agents read with a key that can read this bucket and nothing else.
 * The deploy's key reaches both.
 */
export class ObjectStore extends pulumi.ComponentResource {
    /**
     * Endpoint URL (scheme, host, optional port), SigV4 signing region,
     * bucket name and the key pair scoped to this bucket (secret): what every
     * bucket-backed resource spreads into its args.
     */
    public readonly access: ObjectStoreAccessOutputs;
    /** The runtime bucket with the deploy's key (read-write). */
    public readonly runtime: ObjectStoreAccessOutputs;
    /** The agents' key pair: read-only, runtime bucket only (secret). */
    public readonly agentCredentials: { accessKeyId: pulumi.Output<string>; secretAccessKey: pulumi.Output<string> };
    /** Who revokes an agents' key no node reads with any more: the stack deletes its own (kind linode); kind s3's key is the operator's. */
    public readonly agentKeyRevokedBy: AgentKeyRevoker;
    public readonly bootstrapPrefix: string;

    constructor(name: string, args: ObjectStoreArgs, opts?: pulumi.ComponentResourceOptions) {
        super("meshstack:index:ObjectStore", name, {}, opts);
        this.bootstrapPrefix = args.bootstrapPrefix;
        this.agentKeyRevokedBy = args.kind === "linode" ? "stack" : "operator";
        const suffix = new random.RandomString(`${name}-suffix`, { length: RANDOM_SUFFIX_LENGTH, upper: false, special: false }, { parent: this });
        const bucketName = pulumi.interpolate`${bucketNameBase(args.naming, name)}-${suffix.result}`;
        const runtimeBucketName = pulumi.interpolate`${bucketNameBase(args.naming, `${name}-rt`)}-${suffix.result}`;
        // A bucket's name cannot change in place (ForceNew), and the deploy's
        // and agents' keys are replaced for a new label (tooling/replacement.ts):
        // a new agents' key is a rotation nobody asked for, which waits for
        // every node's report. So a stack keeps the names its first `up` gave
        // these, whatever a later meshstack's naming says; new stacks get today's.
        const keepName = { ignoreChanges: ["label"] };
        const lifecycle = {
            id: "expire-bootstrap-objects",
            prefix: args.bootstrapPrefix,
            expirationDays: args.bootstrapObjectExpiryDays,
        };

        if (args.kind === "linode") {
            const bucket = new linode.ObjectStorageBucket(`${name}-bucket`, {
                label: bucketName,
                region: args.region,
                acl: "private",
                corsEnabled: false,
                lifecycleRules: [{ id: lifecycle.id, enabled: true, prefix: lifecycle.prefix, expiration: { days: lifecycle.expirationDays } }],
            }, { parent: this, protect: args.protect, ...keepName });
            // Protected like the bootstrap bucket: every running agent reads its desired state here.
            const runtimeBucket = new linode.ObjectStorageBucket(`${name}-runtime-bucket`, {
                label: runtimeBucketName,
                region: args.region,
                acl: "private",
                corsEnabled: false,
            }, { parent: this, protect: args.protect, ...keepName });
            const key = new linode.ObjectStorageKey(`${name}-key`, {
                label: objectStorageKeyLabel(args.naming, `${name}-key`),
                bucketAccesses: [
                    { bucketName: bucket.label, region: bucket.region, permissions: "read_write" },
                    { bucketName: runtimeBucket.label, region: runtimeBucket.region, permissions: "read_write" },
                ],
            }, { parent: this, additionalSecretOutputs: ["secretKey"], ...keepName });
            // A rotation is a key of another name: the engine creates it with the
            // new program and deletes the old one only after every other step of
            // the `up` succeeded, the wait for the nodes' reports included.
            // Generation 1 keeps the name stacks made before rotation existed.
            const generation = args.agentKeyGeneration ?? 1;
            const agentKeyName = generation === 1 ? `${name}-agent-key` : `${name}-agent-key-${generation}`;
            const agentKey = new linode.ObjectStorageKey(agentKeyName, {
                label: objectStorageKeyLabel(args.naming, agentKeyName),
                bucketAccesses: [{ bucketName: runtimeBucket.label, region: runtimeBucket.region, permissions: "read_only" }],
            }, { parent: this, additionalSecretOutputs: ["secretKey"], ...keepName });
            // Linode's S3 endpoints are <cluster-id>.linodeobjects.com; SigV4 signs with the cluster id.
            const endpoint = bucket.endpoint.apply((host) => `https://${host}`);
            const region = bucket.endpoint.apply((host) => host.split(".")[0]);
            const deployKey = { accessKeyId: pulumi.secret(key.accessKey), secretAccessKey: pulumi.secret(key.secretKey) };
            this.access = { endpoint, region, bucket: bucket.label, ...deployKey };
            this.runtime = { endpoint, region, bucket: runtimeBucket.label, ...deployKey };
            this.agentCredentials = { accessKeyId: pulumi.secret(agentKey.accessKey), secretAccessKey: pulumi.secret(agentKey.secretKey) };
        } else {
            if (!args.endpoint || !args.s3Credentials || !args.s3AgentCredentials) {
                throw new pulumi.ResourceError(
                    "ObjectStore kind s3 needs endpoint, s3Credentials and s3AgentCredentials (meshstack:objectStoreEndpoint, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, MESHSTACK_AGENT_ACCESS_KEY_ID/MESHSTACK_AGENT_SECRET_ACCESS_KEY)",
                    this,
                );
            }
            // Explicit provider: a self-hosted store has no STS, IAM or EC2
            // metadata, and needs path-style addressing.
            const provider = new aws.Provider(`${name}-s3`, {
                region: args.region as aws.Region,
                accessKey: args.s3Credentials.accessKeyId,
                secretKey: args.s3Credentials.secretAccessKey,
                endpoints: [{ s3: args.endpoint }],
                s3UsePathStyle: true,
                skipCredentialsValidation: true,
                skipRequestingAccountId: true,
                skipMetadataApiCheck: true,
                skipRegionValidation: true,
            }, { parent: this });
            const tags = Object.fromEntries((args.tags ?? []).map((tag) => [tag, "true"]));
            const bucket = new aws.s3.Bucket(`${name}-bucket`, { bucket: bucketName, forceDestroy: true, tags }, { parent: this, provider, protect: args.protect, ignoreChanges: ["bucket"] });
            new aws.s3.BucketLifecycleConfiguration(`${name}-lifecycle`, {
                bucket: bucket.bucket,
                rules: [{ id: lifecycle.id, status: "Enabled", filter: { prefix: lifecycle.prefix }, expiration: { days: lifecycle.expirationDays } }],
            }, { parent: this, provider });
            const runtimeBucket = new aws.s3.Bucket(`${name}-runtime-bucket`, { bucket: runtimeBucketName, forceDestroy: true, tags }, { parent: this, provider, protect: args.protect, ignoreChanges: ["bucket"] });
            const endpoint = pulumi.output(args.endpoint.replace(/\/$/, ""));
            const region = pulumi.output(args.region);
            const deployKey = { accessKeyId: pulumi.secret(pulumi.output(args.s3Credentials.accessKeyId)), secretAccessKey: pulumi.secret(pulumi.output(args.s3Credentials.secretAccessKey)) };
            this.access = { endpoint, region, bucket: bucket.bucket, ...deployKey };
            this.runtime = { endpoint, region, bucket: runtimeBucket.bucket, ...deployKey };
            this.agentCredentials = {
                accessKeyId: pulumi.secret(pulumi.output(args.s3AgentCredentials.accessKeyId)),
                secretAccessKey: pulumi.secret(pulumi.output(args.s3AgentCredentials.secretAccessKey)),
            };
        }

        this.registerOutputs({ access: this.access, runtime: this.runtime, agentCredentials: this.agentCredentials });
    }
}
