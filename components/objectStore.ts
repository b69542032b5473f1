import * as aws from "@pulumi/aws";
import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { bucketNameBase, linodeLabel, NamingContext, RANDOM_SUFFIX_LENGTH } from "../lib/naming";
import { ObjectStoreAccess, S3KeyPair } from "../providers/s3Args";

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
    /** Protect the bucket (it holds state): deleting or replacing it then needs `pulumi state unprotect`. */
    protect?: boolean;
    /**
     * Kind s3 only: the key pair the deploy signs bootstrap URLs with. An S3
     * store's IAM is outside this stack, so the operator supplies a key
     * already scoped to the bucket (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
     */
    s3Credentials?: S3KeyPair;
}

/**
 * The private bucket nodes rendezvous through: bootstrap objects (large
 * user-data, the WireGuard public key) go up and down with presigned URLs
 * signed by a key that can reach this bucket only.
 */
export class ObjectStore extends pulumi.ComponentResource {
    /**
     * Endpoint URL (scheme, host, optional port), SigV4 signing region,
     * bucket name and the key pair scoped to this bucket (secret): what every
     * bucket-backed resource spreads into its args.
     */
    public readonly access: ObjectStoreAccessOutputs;
    public readonly bootstrapPrefix: string;

    constructor(name: string, args: ObjectStoreArgs, opts?: pulumi.ComponentResourceOptions) {
        super("meshstack:index:ObjectStore", name, {}, opts);
        this.bootstrapPrefix = args.bootstrapPrefix;
        const suffix = new random.RandomString(`${name}-suffix`, { length: RANDOM_SUFFIX_LENGTH, upper: false, special: false }, { parent: this });
        const bucketName = pulumi.interpolate`${bucketNameBase(args.naming, name)}-${suffix.result}`;
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
            }, { parent: this, protect: args.protect });
            const key = new linode.ObjectStorageKey(`${name}-key`, {
                label: linodeLabel(args.naming, `${name}-key`),
                bucketAccesses: [{ bucketName: bucket.label, region: bucket.region, permissions: "read_write" }],
            }, { parent: this, additionalSecretOutputs: ["secretKey"] });
            this.access = {
                endpoint: bucket.endpoint.apply((host) => `https://${host}`),
                // Linode's S3 endpoints are <cluster-id>.linodeobjects.com; SigV4 signs with the cluster id.
                region: bucket.endpoint.apply((host) => host.split(".")[0]),
                bucket: bucket.label,
                accessKeyId: pulumi.secret(key.accessKey),
                secretAccessKey: pulumi.secret(key.secretKey),
            };
        } else {
            if (!args.endpoint || !args.s3Credentials) {
                throw new pulumi.ResourceError("ObjectStore kind s3 needs endpoint and s3Credentials (meshstack:objectStoreEndpoint, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)", this);
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
            const bucket = new aws.s3.Bucket(`${name}-bucket`, { bucket: bucketName, forceDestroy: true, tags }, { parent: this, provider, protect: args.protect });
            new aws.s3.BucketLifecycleConfiguration(`${name}-lifecycle`, {
                bucket: bucket.bucket,
                rules: [{ id: lifecycle.id, status: "Enabled", filter: { prefix: lifecycle.prefix }, expiration: { days: lifecycle.expirationDays } }],
            }, { parent: this, provider });
            this.access = {
                endpoint: pulumi.output(args.endpoint.replace(/\/$/, "")),
                region: pulumi.output(args.region),
                bucket: bucket.bucket,
                accessKeyId: pulumi.secret(args.s3Credentials.accessKeyId),
                secretAccessKey: pulumi.secret(args.s3Credentials.secretAccessKey),
            };
        }

        this.registerOutputs({ access: this.access });
    }
}
