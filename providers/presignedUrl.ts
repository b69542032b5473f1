import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { InputProblem, presignObjectUrl, S3Method, S3ObjectAccess, s3ObjectAccessProblems } from "./s3";
import { S3ObjectAccessArgs, withSecretCredentials } from "./s3Args";
import { readFromState } from "./stateOnly";
import { changedFields, containsUnknown, knownFailures } from "./unknowns";
import { SIGV4_MAX_EXPIRY_SECONDS } from "../lib/limits";


export interface PresignedUrlArgs extends S3ObjectAccessArgs {
    /** GET to fetch the object, PUT to upload it. */
    method: pulumi.Input<"GET" | "PUT">;
    /** Lifetime in seconds, 1 to 604800. */
    expiresInSeconds: pulumi.Input<number>;
    /**
     * Values that force a fresh signature when they change. A URL is otherwise
     * stable across `up`s: re-signing every run would change user-data and
     * replace instances. Pass whatever replaces the URL's consumer, so a
     * replacement instance never boots with an expired URL.
     */
    keepers?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/** What the provider receives: the args, resolved, with secrets unwrapped by the engine. */
export interface PresignedUrlInputs extends S3ObjectAccess {
    method: "GET" | "PUT";
    expiresInSeconds: number;
    keepers?: Record<string, string>;
}

/** State kept for the resource. The key pair is not kept: a rotation does not re-sign. */
export interface PresignedUrlOutputs {
    endpoint: string;
    region: string;
    bucket: string;
    key: string;
    method: "GET" | "PUT";
    expiresInSeconds: number;
    keepers: Record<string, string>;
    signedAt: string;
    expiresAt: string;
    url: string;
}

export function presignedUrlInputProblems(inputs: Partial<PresignedUrlInputs>): InputProblem[] {
    const problems = s3ObjectAccessProblems(inputs);
    const expiry = inputs.expiresInSeconds;
    if (typeof expiry !== "number" || !Number.isInteger(expiry) || expiry < 1 || expiry > SIGV4_MAX_EXPIRY_SECONDS) {
        problems.push({
            property: "expiresInSeconds",
            reason: `got ${JSON.stringify(expiry)}; allowed: an integer from 1 to ${SIGV4_MAX_EXPIRY_SECONDS} (SigV4's seven days)`,
        });
    }
    if (inputs.method !== "GET" && inputs.method !== "PUT") {
        problems.push({ property: "method", reason: `got ${JSON.stringify(inputs.method)}; allowed: GET or PUT` });
    }
    return problems;
}

async function sign(inputs: PresignedUrlInputs): Promise<PresignedUrlOutputs> {
    // Whole seconds: SigV4 dates have no sub-second part, and a stored date
    // must reproduce the same URL on read.
    const signedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const url = await presignObjectUrl(
        { endpoint: inputs.endpoint, region: inputs.region, bucket: inputs.bucket, key: inputs.key },
        { accessKeyId: inputs.accessKeyId, secretAccessKey: inputs.secretAccessKey },
        inputs.method as S3Method,
        inputs.expiresInSeconds,
        signedAt,
    );
    return {
        endpoint: inputs.endpoint,
        region: inputs.region,
        bucket: inputs.bucket,
        key: inputs.key,
        method: inputs.method,
        expiresInSeconds: inputs.expiresInSeconds,
        keepers: inputs.keepers ?? {},
        signedAt: signedAt.toISOString(),
        expiresAt: new Date(signedAt.getTime() + inputs.expiresInSeconds * 1000).toISOString(),
        url,
    };
}

/**
 * What makes a different URL. Not the lifetime and not the key pair: a URL
 * sits in the user-data of the node that consumes it, which Linode cannot
 * change in place, so re-signing it for a new lifetime or a rotated key
 * would replace a node whose URL is already spent. The keepers say when a
 * fresh URL is due (a new instance generation).
 */
const SIGNED_FIELDS = ["endpoint", "region", "bucket", "key", "method"] as const;

export const presignedUrlProvider: pulumi.dynamic.ResourceProvider<PresignedUrlInputs, PresignedUrlOutputs> = {
    async check(_olds: PresignedUrlInputs, news: PresignedUrlInputs) {
        return { inputs: news, failures: knownFailures(news, presignedUrlInputProblems(news)) };
    },

    async create(inputs: PresignedUrlInputs) {
        return { id: crypto.randomUUID(), outs: await sign(inputs) };
    },

    async diff(_id: string, olds: PresignedUrlOutputs, news: PresignedUrlInputs) {
        const changed: string[] = changedFields(olds, news, SIGNED_FIELDS);
        if (containsUnknown(news.keepers) || JSON.stringify(olds.keepers ?? {}) !== JSON.stringify(news.keepers ?? {})) changed.push("keepers");
        return { changes: changed.length > 0, diffs: changed, replaces: [], deleteBeforeReplace: false };
    },

    async update(_id: string, _olds: PresignedUrlOutputs, news: PresignedUrlInputs) {
        return { outs: await sign(news) };
    },

    read: readFromState<PresignedUrlOutputs>("presigned URL"),

    // A presigned URL cannot be revoked; it lapses at expiresAt. Nothing to delete.
    async delete() {},
};

export class PresignedUrl extends pulumi.dynamic.Resource {
    /** The presigned URL. Secret: it grants access to the object until it expires. */
    public readonly url!: pulumi.Output<string>;
    public readonly signedAt!: pulumi.Output<string>;
    public readonly expiresAt!: pulumi.Output<string>;

    constructor(name: string, args: PresignedUrlArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            presignedUrlProvider,
            name,
            {
                ...withSecretCredentials(args),
                keepers: args.keepers ?? {},
                url: undefined,
                signedAt: undefined,
                expiresAt: undefined,
            },
            pulumi.mergeOptions(opts, { additionalSecretOutputs: ["url"] }),
            "meshstack",
            "PresignedUrl",
        );
    }
}
