/**
 * The object-store leg of bootstrap delivery: `BootstrapObject`
 * uploads a node's original cloud-config before the instance exists, and
 * `BootstrapObjectCleanup` deletes it once the instance has had time to
 * fetch it. The object holds the node's secrets; the bucket's lifecycle rule
 * under the bootstrap prefix is the backstop for anything left behind.
 *
 * Both providers are serialized into state and run in the engine's provider
 * host, so they capture only plain functions and constants from here and
 * from ./s3.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { requiredStringProblems, S3Credentials, S3Location, S3ObjectAccess, s3ObjectAccessProblems, signedObjectRequest } from "./s3";
import { S3ObjectAccessArgs, withSecretCredentials } from "./s3Args";
import { BOOTSTRAP_CLEANUP_DELAY_MAX_SECONDS } from "../lib/limits";
import { readFromState } from "./stateOnly";
import { changedFields, containsUnknown, knownFailures } from "./unknowns";
import { sha256Hex } from "../lib/digest";


export type DeleteOutcome = "deleted" | "already-absent" | "forbidden";

export interface DeleteReport {
    outcome: DeleteOutcome;
    /** What happened, naming the object, never a credential. */
    detail: string;
}

/**
 * Deletes one object and says what happened. Gone already (404) and not
 * allowed (403, e.g. Forbidden or AccessDenied from a key without delete
 * rights) are reported, not thrown: the node is up either way and the
 * lifecycle rule expires the object. Anything else is an error, so the next
 * `pulumi up` tries again.
 */
export async function deleteObjectReporting(location: S3Location, credentials: S3Credentials): Promise<DeleteReport> {
    const where = `s3://${location.bucket}/${location.key}`;
    try {
        // A key that may delete but not read gets 403 here; delete anyway, as the seed does.
        const head = await signedObjectRequest(location, credentials, "HEAD");
        if (head.status === 404) return { outcome: "already-absent", detail: `${where} was already gone (HTTP 404 on HEAD)` };
        const response = await signedObjectRequest(location, credentials, "DELETE");
        const code = response.errorCode ? ` ${response.errorCode}` : "";
        if (response.status === 204 || response.status === 200) return { outcome: "deleted", detail: `${where} deleted` };
        if (response.status === 404) return { outcome: "already-absent", detail: `${where} was already gone (HTTP 404${code})` };
        if (response.status === 403) {
            return {
                outcome: "forbidden",
                detail: `${where} not deleted: HTTP 403${code}; the bucket's lifecycle rule on the bootstrap prefix expires it`,
            };
        }
        throw new Error(`HTTP ${response.status}${code}`);
    } catch (err) {
        throw new Error(`deleting bootstrap object ${where} failed: ${(err as Error).message}; run \`pulumi up\` again to retry`);
    }
}


/** `key` is under the bootstrap prefix; see cloudinit/delivery.ts bootstrapObjectKey. */
export interface BootstrapObjectArgs extends S3ObjectAccessArgs {
    /** The node's original cloud-config. Secret: it carries the node's keys and passwords. */
    content: pulumi.Input<string>;
    /**
     * Whether to upload at all: false when the node's user-data goes inline
     * or gzipped. The resource exists either way, because the choice depends
     * on content that is often unknown at preview time.
     */
    store: pulumi.Input<boolean>;
}

export interface BootstrapObjectInputs extends S3ObjectAccess {
    content: string;
    store: boolean;
}

/** State. The content is not kept, only its digest; the key pair is kept (secret) because delete needs it. */
export interface BootstrapObjectOutputs extends S3ObjectAccess {
    stored: boolean;
    contentSha256: string;
    sizeBytes: number;
}

function bootstrapObjectOutputs(inputs: BootstrapObjectInputs): BootstrapObjectOutputs {
    return {
        endpoint: inputs.endpoint,
        region: inputs.region,
        bucket: inputs.bucket,
        key: inputs.key,
        stored: inputs.store,
        contentSha256: sha256Hex(inputs.content),
        sizeBytes: Buffer.byteLength(inputs.content, "utf8"),
        accessKeyId: inputs.accessKeyId,
        secretAccessKey: inputs.secretAccessKey,
    };
}

export const bootstrapObjectProvider: pulumi.dynamic.ResourceProvider<BootstrapObjectInputs, BootstrapObjectOutputs> = {
    async check(_olds: BootstrapObjectInputs, news: BootstrapObjectInputs) {
        const failures = s3ObjectAccessProblems(news);
        if (typeof news.store !== "boolean") failures.push({ property: "store", reason: `got ${JSON.stringify(news.store)}; allowed: true or false` });
        if (news.store === true && (typeof news.content !== "string" || news.content === "")) {
            failures.push({ property: "content", reason: "is empty; a stored bootstrap object needs the node's cloud-config" });
        }
        return { inputs: news, failures: knownFailures(news, failures) };
    },

    async create(inputs: BootstrapObjectInputs) {
        if (inputs.store) {
            const where = `s3://${inputs.bucket}/${inputs.key}`;
            const response = await signedObjectRequest(
                { endpoint: inputs.endpoint, region: inputs.region, bucket: inputs.bucket, key: inputs.key },
                { accessKeyId: inputs.accessKeyId, secretAccessKey: inputs.secretAccessKey },
                "PUT",
                Buffer.from(inputs.content, "utf8"),
            );
            if (response.status !== 200) {
                throw new Error(
                    `uploading bootstrap object ${where} failed: HTTP ${response.status} ${response.errorCode ?? ""}; ` +
                        "the ObjectStore key needs read_write on the bucket",
                );
            }
            console.log(`bootstrap object ${where} uploaded (${Buffer.byteLength(inputs.content, "utf8")} bytes)`);
        }
        return { id: crypto.randomUUID(), outs: bootstrapObjectOutputs(inputs) };
    },

    async diff(_id: string, olds: BootstrapObjectOutputs, news: BootstrapObjectInputs) {
        const replaces: string[] = changedFields(olds, news, ["endpoint", "bucket", "key"] as const);
        if (containsUnknown(news.content) || olds.contentSha256 !== sha256Hex(news.content)) replaces.push("content");
        if (containsUnknown(news.store) || olds.stored !== news.store) replaces.push("store");
        const updates = changedFields(olds, news, ["region", "accessKeyId", "secretAccessKey"] as const);
        // Unknown here means "may be the same object": delete first, so the new one is never deleted after it is written.
        const sameObject = changedFields(olds, news, ["endpoint", "bucket", "key"] as const).every((field) => containsUnknown(news[field]));
        return {
            changes: replaces.length + updates.length > 0,
            diffs: [...replaces, ...updates],
            replaces,
            // Creating first and deleting second would delete the object just written under the same key.
            deleteBeforeReplace: replaces.length > 0 && sameObject,
        };
    },

    // Only the signing region or the key pair changed (replacements go through create):
    // the object stays, the state keeps what delete will sign with.
    async update(_id: string, _olds: BootstrapObjectOutputs, news: BootstrapObjectInputs) {
        return { outs: bootstrapObjectOutputs(news) };
    },

    // After cleanup the object is gone on purpose; refresh must not resurrect it.
    read: readFromState<BootstrapObjectOutputs>("bootstrap object record"),

    async delete(_id: string, props: BootstrapObjectOutputs) {
        if (!props.stored) return;
        const report = await deleteObjectReporting(
            { endpoint: props.endpoint, region: props.region, bucket: props.bucket, key: props.key },
            { accessKeyId: props.accessKeyId, secretAccessKey: props.secretAccessKey },
        );
        console.log(`bootstrap object ${report.outcome}: ${report.detail}`);
    },
};

/** A node's original cloud-config in the bucket, for its #include pointer to fetch. */
export class BootstrapObject extends pulumi.dynamic.Resource {
    public readonly key!: pulumi.Output<string>;
    /** Whether the object was uploaded (the node's delivery method is object). */
    public readonly stored!: pulumi.Output<boolean>;
    public readonly contentSha256!: pulumi.Output<string>;
    public readonly sizeBytes!: pulumi.Output<number>;

    constructor(name: string, args: BootstrapObjectArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            bootstrapObjectProvider,
            name,
            {
                ...withSecretCredentials(args),
                content: pulumi.secret(args.content),
                stored: undefined,
                contentSha256: undefined,
                sizeBytes: undefined,
            },
            pulumi.mergeOptions(opts, { additionalSecretOutputs: ["accessKeyId", "secretAccessKey"] }),
            "meshstack",
            "BootstrapObject",
        );
    }
}

/** `key` is the BootstrapObject's key. */
export interface BootstrapObjectCleanupArgs extends S3ObjectAccessArgs {
    /** The BootstrapObject's `stored`: nothing to wait for or delete when false. */
    stored: pulumi.Input<boolean>;
    /** The instance that fetches the object; a replacement instance runs the cleanup again. */
    instanceId: pulumi.Input<string>;
    /** Seconds to keep the object after the instance reports running (0 to BOOTSTRAP_CLEANUP_DELAY_MAX_SECONDS). */
    delaySeconds: pulumi.Input<number>;
}

export interface BootstrapObjectCleanupInputs extends S3ObjectAccess {
    stored: boolean;
    instanceId: string;
    delaySeconds: number;
}

export type CleanupOutcome = DeleteOutcome | "nothing-stored";

/** State: which object for which instance, and what the delete did. No credentials: delete does nothing. */
export interface BootstrapObjectCleanupOutputs {
    endpoint: string;
    bucket: string;
    key: string;
    stored: boolean;
    instanceId: string;
    outcome: CleanupOutcome;
    detail: string;
}

async function runCleanup(inputs: BootstrapObjectCleanupInputs): Promise<BootstrapObjectCleanupOutputs> {
    const base = { endpoint: inputs.endpoint, bucket: inputs.bucket, key: inputs.key, stored: inputs.stored, instanceId: inputs.instanceId };
    if (!inputs.stored) return { ...base, outcome: "nothing-stored", detail: "user-data went inline or gzipped; nothing in the bucket" };
    console.log(`keeping s3://${inputs.bucket}/${inputs.key} ${inputs.delaySeconds}s for instance ${inputs.instanceId} to fetch it`);
    // The delay is this wait's own deadline: the host's cancel RPC is a no-op,
    // and a killed host leaves the object to the next `up` and the lifecycle rule.
    await new Promise((resolve) => setTimeout(resolve, inputs.delaySeconds * 1000));
    const report = await deleteObjectReporting(
        { endpoint: inputs.endpoint, region: inputs.region, bucket: inputs.bucket, key: inputs.key },
        { accessKeyId: inputs.accessKeyId, secretAccessKey: inputs.secretAccessKey },
    );
    console.log(`bootstrap cleanup ${report.outcome}: ${report.detail}`);
    return { ...base, ...report };
}

const CLEANUP_TRIGGERS = ["endpoint", "bucket", "key", "stored", "instanceId"] as const;

export const bootstrapObjectCleanupProvider: pulumi.dynamic.ResourceProvider<BootstrapObjectCleanupInputs, BootstrapObjectCleanupOutputs> = {
    async check(_olds: BootstrapObjectCleanupInputs, news: BootstrapObjectCleanupInputs) {
        const failures = s3ObjectAccessProblems(news);
        const delay = news.delaySeconds;
        if (typeof delay !== "number" || !Number.isInteger(delay) || delay < 0 || delay > BOOTSTRAP_CLEANUP_DELAY_MAX_SECONDS) {
            failures.push({ property: "delaySeconds", reason: `got ${JSON.stringify(delay)}; allowed: an integer from 0 to ${BOOTSTRAP_CLEANUP_DELAY_MAX_SECONDS}` });
        }
        failures.push(...requiredStringProblems(news, ["instanceId"] as const));
        return { inputs: news, failures: knownFailures(news, failures) };
    },

    async create(inputs: BootstrapObjectCleanupInputs) {
        return { id: crypto.randomUUID(), outs: await runCleanup(inputs) };
    },

    // Rotated keys or a new delay alone do not warrant another delete.
    async diff(_id: string, olds: BootstrapObjectCleanupOutputs, news: BootstrapObjectCleanupInputs) {
        const changed = changedFields(olds, news, CLEANUP_TRIGGERS);
        return { changes: changed.length > 0, diffs: [...changed], replaces: [], deleteBeforeReplace: false };
    },

    async update(_id: string, _olds: BootstrapObjectCleanupOutputs, news: BootstrapObjectCleanupInputs) {
        return { outs: await runCleanup(news) };
    },

    read: readFromState<BootstrapObjectCleanupOutputs>("bootstrap cleanup"),

    // The object belongs to its BootstrapObject, whose delete removes it.
    async delete() {},
};

/** Deletes a node's bootstrap object a delay after the instance reports running. */
export class BootstrapObjectCleanup extends pulumi.dynamic.Resource {
    public readonly outcome!: pulumi.Output<CleanupOutcome>;
    public readonly detail!: pulumi.Output<string>;

    constructor(name: string, args: BootstrapObjectCleanupArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            bootstrapObjectCleanupProvider,
            name,
            {
                ...withSecretCredentials(args),
                outcome: undefined,
                detail: undefined,
            },
            opts,
            "meshstack",
            "BootstrapObjectCleanup",
        );
    }
}
