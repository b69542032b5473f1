/**
 * The object-store leg of bootstrap delivery: `BootstrapObject`
 * uploads a node's original cloud-config before the instance exists, and
 * `BootstrapObjectCleanup` deletes it once the instance has published its
 * first-boot material, which it can only do after fetching the object (the
 * publish URL is inside it). A fixed delay would hold every `up` for its
 * full length; the publication ends the wait as soon as the node is done
 * with the object, and a deadline ends it for a node that never publishes. The object holds the node's secrets; the bucket's lifecycle rule
 * under the bootstrap prefix is the backstop for anything left behind.
 *
 * Both providers are serialized into state and run in the engine's provider
 * host, so they capture only plain functions and constants from here and
 * from ./s3.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { objectWhere, requiredStringProblems, S3Credentials, S3Location, S3ObjectAccess, s3ObjectAccessProblems, S3Response, signedObjectRequest } from "./s3";
import { S3ObjectAccessArgs, withSecretCredentials } from "./s3Args";
import { PUBLISH_TIMEOUT_MAX_SECONDS } from "../lib/limits";
import { readFromState } from "./stateOnly";
import { changedFields, containsUnknown, knownFailures } from "./unknowns";
import { sha256Hex } from "../lib/digest";
import { formatSeconds } from "../lib/duration";


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
    /**
     * Where the node publishes its first-boot material (lib/runtimeChannel.ts):
     * the runtime bucket, on the same endpoint and read with the same deploy key.
     * The publish URL is in the cloud-config the object holds, so this
     * instance's document there proves it fetched the object.
     */
    publishedBucket: pulumi.Input<string>;
    publishedKey: pulumi.Input<string>;
    /** Seconds to wait for that proof before deleting anyway: the node's key-poll timeout. */
    deadlineSeconds: pulumi.Input<number>;
}

export interface BootstrapObjectCleanupInputs extends S3ObjectAccess {
    stored: boolean;
    instanceId: string;
    publishedBucket: string;
    publishedKey: string;
    deadlineSeconds: number;
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
    /** Why the delete ran when it did: the node published (it has its config), or the deadline passed. */
    deletedOn?: "published" | "deadline";
}

/**
 * How often the cleanup looks for the node's publication. The `up` waits on
 * the cleanup, so this bounds how long it lags the node; the poll of the same
 * document (providers/wgPubkeyPoll.ts) lags it by up to 6 s anyway.
 */
export const PUBLICATION_CHECK_INTERVAL_MS = 3_000;
/** A progress line at most this often while the node has not published yet. */
export const PUBLICATION_PROGRESS_INTERVAL_MS = 30_000;
/** Limit of one GET of the published document. */
const PUBLICATION_REQUEST_TIMEOUT_MS = 10_000;

export interface PublicationWaitDeps {
    now(): number;
    sleep(ms: number): Promise<void>;
    /** One GET of the published document. */
    get(timeoutMs: number): Promise<S3Response>;
    log(line: string): void;
}

export interface PublicationWait {
    published: boolean;
    waitedMs: number;
    /** What the last GET saw, for the message when the deadline passed. */
    lastStatus: string;
}

/** Whether a GET of the published key shows this instance's document, and what it saw otherwise. */
function publicationSeen(response: S3Response, instanceId: string): { seen: boolean; status: string } {
    const status = `HTTP ${response.status}${response.errorCode ? ` ${response.errorCode}` : ""}`;
    if (response.status !== 200) return { seen: false, status };
    try {
        const doc = JSON.parse(response.body.toString("utf8")) as { instanceId?: unknown };
        // A bare instance replacement keeps the key: only this instance's document proves this instance fetched its config.
        if (doc?.instanceId === instanceId) return { seen: true, status };
        return { seen: false, status: `${status}, a document of instance ${JSON.stringify(doc?.instanceId)}, not ${instanceId}` };
    } catch {
        return { seen: false, status: `${status}, not JSON yet` };
    }
}

/**
 * Waits until the instance's publication is there or the deadline passes,
 * whichever comes first; never throws for what it sees (a network error or
 * a 403 is "not yet"), since the delete runs either way.
 */
export async function waitForPublication(where: string, instanceId: string, deadlineMs: number, deps: PublicationWaitDeps): Promise<PublicationWait> {
    const start = deps.now();
    let lastStatus = "no response yet";
    let lastProgress = start;
    for (;;) {
        const remaining = start + deadlineMs - deps.now();
        const seen = await deps.get(Math.max(1_000, Math.min(PUBLICATION_REQUEST_TIMEOUT_MS, remaining)))
            .then((response) => publicationSeen(response, instanceId))
            .catch((err: Error) => ({ seen: false, status: `network error (${err.message})` }));
        lastStatus = seen.status;
        const now = deps.now();
        if (seen.seen) return { published: true, waitedMs: now - start, lastStatus };
        if (now - start >= deadlineMs) return { published: false, waitedMs: now - start, lastStatus };
        if (now - lastProgress >= PUBLICATION_PROGRESS_INTERVAL_MS) {
            deps.log(`bootstrap cleanup: instance ${instanceId} has not published to ${where} after ${formatSeconds(now - start)} (${lastStatus}); deleting at the latest in ${formatSeconds(start + deadlineMs - now)}`);
            lastProgress = now;
        }
        await deps.sleep(Math.min(PUBLICATION_CHECK_INTERVAL_MS, start + deadlineMs - now));
    }
}


export interface CleanupDeps extends PublicationWaitDeps {
    /** Deletes the bootstrap object (deleteObjectReporting). */
    deleteObject(): Promise<DeleteReport>;
}

/** Where the node publishes: the runtime bucket, on the bootstrap object's endpoint. */
function publishedLocation(inputs: BootstrapObjectCleanupInputs): S3Location {
    return { endpoint: inputs.endpoint, region: inputs.region, bucket: inputs.publishedBucket, key: inputs.publishedKey };
}

/** The cleanup with its clock and network handed in, so tests run it on a fake clock. */
export async function runCleanup(inputs: BootstrapObjectCleanupInputs, deps: CleanupDeps): Promise<BootstrapObjectCleanupOutputs> {
    const base = { endpoint: inputs.endpoint, bucket: inputs.bucket, key: inputs.key, stored: inputs.stored, instanceId: inputs.instanceId };
    if (!inputs.stored) return { ...base, outcome: "nothing-stored", detail: "user-data went inline or gzipped; nothing in the bucket" };
    deps.log(`bootstrap cleanup: keeping ${objectWhere(inputs)} until instance ${inputs.instanceId} publishes (it has fetched its config then), at most ${inputs.deadlineSeconds}s`);
    // The deadline is this wait's own: the host's cancel RPC is a no-op,
    // and a killed host leaves the object to the next `up` and the lifecycle rule.
    const wait = await waitForPublication(objectWhere(publishedLocation(inputs)), inputs.instanceId, inputs.deadlineSeconds * 1000, deps);
    const why = wait.published
        ? `instance ${inputs.instanceId} published after ${formatSeconds(wait.waitedMs)}`
        : `instance ${inputs.instanceId} did not publish within ${inputs.deadlineSeconds}s (last: ${wait.lastStatus})`;
    const report = await deps.deleteObject();
    deps.log(`bootstrap cleanup ${report.outcome} (${why}): ${report.detail}`);
    return { ...base, ...report, deletedOn: wait.published ? "published" : "deadline" };
}

function liveCleanup(inputs: BootstrapObjectCleanupInputs): Promise<BootstrapObjectCleanupOutputs> {
    const published = publishedLocation(inputs);
    const credentials = { accessKeyId: inputs.accessKeyId, secretAccessKey: inputs.secretAccessKey };
    return runCleanup(inputs, {
        now: () => Date.now(),
        sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        get: (timeoutMs) => signedObjectRequest(published, credentials, "GET", undefined, timeoutMs),
        log: (line) => console.log(line),
        deleteObject: () => deleteObjectReporting({ endpoint: inputs.endpoint, region: inputs.region, bucket: inputs.bucket, key: inputs.key }, credentials),
    });
}

const CLEANUP_TRIGGERS = ["endpoint", "bucket", "key", "stored", "instanceId"] as const;

export const bootstrapObjectCleanupProvider: pulumi.dynamic.ResourceProvider<BootstrapObjectCleanupInputs, BootstrapObjectCleanupOutputs> = {
    async check(_olds: BootstrapObjectCleanupInputs, news: BootstrapObjectCleanupInputs) {
        const failures = s3ObjectAccessProblems(news);
        const deadline = news.deadlineSeconds;
        if (typeof deadline !== "number" || !Number.isInteger(deadline) || deadline < 0 || deadline > PUBLISH_TIMEOUT_MAX_SECONDS) {
            failures.push({ property: "deadlineSeconds", reason: `got ${JSON.stringify(deadline)}; allowed: an integer from 0 to ${PUBLISH_TIMEOUT_MAX_SECONDS}` });
        }
        failures.push(...requiredStringProblems(news, ["instanceId", "publishedBucket", "publishedKey"] as const));
        return { inputs: news, failures: knownFailures(news, failures) };
    },

    async create(inputs: BootstrapObjectCleanupInputs) {
        return { id: crypto.randomUUID(), outs: await liveCleanup(inputs) };
    },

    // Rotated keys, a new deadline or a new publication key alone do not warrant another delete.
    async diff(_id: string, olds: BootstrapObjectCleanupOutputs, news: BootstrapObjectCleanupInputs) {
        const changed = changedFields(olds, news, CLEANUP_TRIGGERS);
        return { changes: changed.length > 0, diffs: [...changed], replaces: [], deleteBeforeReplace: false };
    },

    async update(_id: string, _olds: BootstrapObjectCleanupOutputs, news: BootstrapObjectCleanupInputs) {
        return { outs: await liveCleanup(news) };
    },

    read: readFromState<BootstrapObjectCleanupOutputs>("bootstrap cleanup"),

    // The object belongs to its BootstrapObject, whose delete removes it.
    async delete() {},
};

/** Deletes a node's bootstrap object once the instance has published (so has fetched it), or at a deadline. */
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
