/**
 * A node's desired state in the runtime bucket (lib/runtimeChannel.ts): the
 * one writer of what agents apply. A change of content is an update in
 * place (the object is rewritten, never deleted first), so an agent polling
 * it sees the old document or the new one, never a gap. Content with
 * private key material is refused: every node's key can read this bucket.
 *
 * Serialized into state and run in the engine's provider host: it captures
 * only plain functions and constants.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { deleteObjectReporting } from "./bootstrapObject";
import { objectWhere, S3ObjectAccess, s3ObjectAccessProblems, signedObjectRequest } from "./s3";
import { S3ObjectAccessArgs, withSecretCredentials } from "./s3Args";
import { readFromState } from "./stateOnly";
import { changedFields, containsUnknown, knownFailures } from "./unknowns";
import { sha256Hex } from "../lib/digest";

export interface RuntimeDocumentArgs extends S3ObjectAccessArgs {
    /** The JSON document. Public material only. */
    content: pulumi.Input<string>;
}

export interface RuntimeDocumentInputs extends S3ObjectAccess {
    content: string;
}

/** State: where, the digest of what was written, and the key pair delete signs with (secret). */
export interface RuntimeDocumentOutputs extends S3ObjectAccess {
    contentSha256: string;
    sizeBytes: number;
    writtenAt: string;
}

async function write(inputs: RuntimeDocumentInputs): Promise<RuntimeDocumentOutputs> {
    const where = objectWhere(inputs);
    let response;
    try {
        response = await signedObjectRequest(
            { endpoint: inputs.endpoint, region: inputs.region, bucket: inputs.bucket, key: inputs.key },
            { accessKeyId: inputs.accessKeyId, secretAccessKey: inputs.secretAccessKey },
            "PUT",
            Buffer.from(inputs.content, "utf8"),
        );
    } catch (err) {
        throw new Error(`PUT ${where} failed: ${(err as { reason?: string }).reason ?? (err as Error).message}`);
    }
    if (response.status !== 200) {
        throw new Error(`PUT ${where} failed: HTTP ${response.status} ${response.errorCode ?? ""}; the ObjectStore key needs read_write on the runtime bucket`);
    }
    console.log(`desired state ${where} written (${Buffer.byteLength(inputs.content, "utf8")} bytes)`);
    return {
        endpoint: inputs.endpoint,
        region: inputs.region,
        bucket: inputs.bucket,
        key: inputs.key,
        accessKeyId: inputs.accessKeyId,
        secretAccessKey: inputs.secretAccessKey,
        contentSha256: sha256Hex(inputs.content),
        sizeBytes: Buffer.byteLength(inputs.content, "utf8"),
        writtenAt: new Date().toISOString(),
    };
}

const PRIVATE_KEY_MARKER = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

export const runtimeDocumentProvider: pulumi.dynamic.ResourceProvider<RuntimeDocumentInputs, RuntimeDocumentOutputs> = {
    async check(_olds: RuntimeDocumentInputs, news: RuntimeDocumentInputs) {
        const failures = s3ObjectAccessProblems(news);
        if (typeof news.content === "string" && !containsUnknown(news.content)) {
            try {
                JSON.parse(news.content);
            } catch (err) {
                failures.push({ property: "content", reason: `is not JSON: ${(err as Error).message}` });
            }
            if (PRIVATE_KEY_MARKER.test(news.content)) failures.push({ property: "content", reason: "holds private key material; the runtime bucket is for public material only" });
        }
        return { inputs: news, failures: knownFailures(news, failures) };
    },

    async create(inputs: RuntimeDocumentInputs) {
        return { id: crypto.randomUUID(), outs: await write(inputs) };
    },

    async diff(_id: string, olds: RuntimeDocumentOutputs, news: RuntimeDocumentInputs) {
        const replaces: string[] = changedFields(olds, news, ["endpoint", "bucket", "key"] as const);
        const updates: string[] = changedFields(olds, news, ["region", "accessKeyId", "secretAccessKey"] as const);
        if (containsUnknown(news.content) || olds.contentSha256 !== sha256Hex(news.content)) updates.push("content");
        return { changes: replaces.length + updates.length > 0, diffs: [...replaces, ...updates], replaces, deleteBeforeReplace: false };
    },

    // Rewritten in place, or only the key pair changed and the state keeps the new one for delete.
    async update(_id: string, olds: RuntimeDocumentOutputs, news: RuntimeDocumentInputs) {
        if (olds.contentSha256 === sha256Hex(news.content)) return { outs: { ...olds, region: news.region, accessKeyId: news.accessKeyId, secretAccessKey: news.secretAccessKey } };
        return { outs: await write(news) };
    },

    read: readFromState<RuntimeDocumentOutputs>("desired state record"),

    async delete(_id: string, props: RuntimeDocumentOutputs) {
        const report = await deleteObjectReporting(
            { endpoint: props.endpoint, region: props.region, bucket: props.bucket, key: props.key },
            { accessKeyId: props.accessKeyId, secretAccessKey: props.secretAccessKey },
        );
        console.log(`desired state ${report.outcome}: ${report.detail}`);
    },
};

export class RuntimeDocument extends pulumi.dynamic.Resource {
    public readonly contentSha256!: pulumi.Output<string>;
    public readonly writtenAt!: pulumi.Output<string>;

    constructor(name: string, args: RuntimeDocumentArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            runtimeDocumentProvider,
            name,
            { ...withSecretCredentials(args), contentSha256: undefined, sizeBytes: undefined, writtenAt: undefined },
            pulumi.mergeOptions(opts, { additionalSecretOutputs: ["accessKeyId", "secretAccessKey"] }),
            "meshstack",
            "RuntimeDocument",
        );
    }
}
