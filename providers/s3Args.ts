/**
 * The program side of bucket-backed dynamic resources: their shared args and
 * the secrecy of the key pair. Kept apart from ./s3, which is captured into
 * serialized providers and must not reach for the Pulumi runtime.
 */
import * as pulumi from "@pulumi/pulumi";
import { S3Credentials } from "./s3";

/** The bucket's key pair, as program values. */
export type S3KeyPair = { [K in keyof S3Credentials]: pulumi.Input<string> };

/**
 * How the stack's bucket is reached: the one bundle ObjectStore hands to
 * every bucket-backed resource, which spread it into their args unchanged.
 */
export interface ObjectStoreAccess {
    /** S3 endpoint URL with scheme and optional port, no path. */
    endpoint: pulumi.Input<string>;
    /** SigV4 signing region. */
    region: pulumi.Input<string>;
    bucket: pulumi.Input<string>;
    /** Key pair scoped to the bucket; always passed on as secrets. */
    accessKeyId: pulumi.Input<string>;
    secretAccessKey: pulumi.Input<string>;
}

export interface S3ObjectAccessArgs extends ObjectStoreAccess {
    /** Object key; any UTF-8 except "." / ".." segments and control characters. */
    key: pulumi.Input<string>;
}

/** The args with the key pair marked secret, so it is encrypted in state and never displayed. */
export function withSecretCredentials<T extends Pick<S3ObjectAccessArgs, "accessKeyId" | "secretAccessKey">>(args: T): T {
    return { ...args, accessKeyId: pulumi.secret(args.accessKeyId), secretAccessKey: pulumi.secret(args.secretAccessKey) };
}
