import * as aws from "@pulumi/aws";
import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { bucketNameBase, linodeLabel, NamingContext, RANDOM_SUFFIX_LENGTH } from "../lib/naming";

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
    s3Credentials?: { accessKeyId: pulumi.Input<string>; secretAccessKey: pulumi.Input<string> };
}

/**
 * The private bucket nodes rendezvous through: bootstrap objects (large
 * user-data, the WireGuard public key) go up and down with presigned URLs
 * signed by a key that can reach this bucket only.
 */
export class ObjectStore extends pulumi.ComponentResource {
    public readonly bucketName: pulumi.Output<string>;
    /** S3 endpoint URL (scheme, host, optional port). */
    public readonly endpoint: pulumi.Output<string>;
    /** SigV4 signing region for the endpoint. */
    public readonly signingRegion: pulumi.Output<string>;
    /** Access key scoped to this bucket (secret). */
    public readonly accessKeyId: pulumi.Output<string>;
    /** Secret of accessKeyId (secret). */
    public readonly secretAccessKey: pulumi.Output<string>;
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
            this.bucketName = bucket.label;
            this.endpoint = bucket.endpoint.apply((host) => `https://${host}`);
            // Linode's S3 endpoints are <cluster-id>.linodeobjects.com; SigV4 signs with the cluster id.
            this.signingRegion = bucket.endpoint.apply((host) => host.split(".")[0]);
            this.accessKeyId = pulumi.secret(key.accessKey);
            this.secretAccessKey = pulumi.secret(key.secretKey);
        } else {
            if (!args.endpoint || !args.s3Credentials) {
                throw new Error("ObjectStore kind s3 needs endpoint and s3Credentials (meshstack:objectStoreEndpoint, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)");
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
            this.bucketName = bucket.bucket;
            this.endpoint = pulumi.output(args.endpoint.replace(/\/$/, ""));
            this.signingRegion = pulumi.output(args.region);
            this.accessKeyId = pulumi.secret(args.s3Credentials.accessKeyId);
            this.secretAccessKey = pulumi.secret(args.s3Credentials.secretAccessKey);
        }

        this.registerOutputs({
            bucketName: this.bucketName,
            endpoint: this.endpoint,
            signingRegion: this.signingRegion,
            accessKeyId: this.accessKeyId,
            secretAccessKey: this.secretAccessKey,
        });
    }
}
