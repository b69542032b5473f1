/**
 * How a node's cloud-config reaches it (as Cluster API Provider
 * Linode's bootstrap-via-object-store): inline through Linode Metadata when
 * it fits, gzipped when it fits compressed and the image's cloud-init
 * accepts that, otherwise uploaded to the bucket and replaced by a small
 * `#include` pointer to a presigned GET URL.
 *
 * Pure: every decision is one function over sizes and flags, and every
 * failure is a value, so the component, the offline plan and the tests all
 * run the same code without a Pulumi runtime.
 */
import * as zlib from "zlib";
import { BootstrapConfig } from "../lib/config";
import { LINODE_METADATA_HARD_LIMIT_BYTES, METADATA_LIMIT_MIN_BYTES } from "../lib/limits";

export type DeliveryMethod = "inline" | "gzip" | "object";

/** Strongest deflate level: the point of gzipping is to get under the limit. */
export const GZIP_LEVEL = 9;
/**
 * Byte 9 of a gzip header names the compressing OS, which zlib takes from
 * the machine running `pulumi up`. Pinning it keeps the delivered bytes, and
 * so the instance, identical whoever deploys. 255 is RFC 1952's "unknown".
 */
export const GZIP_HEADER_OS_BYTE_OFFSET = 9;
export const GZIP_HEADER_OS_UNKNOWN = 255;
/** First line of a cloud-init include file; each following line is one URL (cloud-init 22.4 user_data._do_include). */
export const INCLUDE_HEADER = "#include";
/** Length of the content-hash part of a bootstrap object key. */
export const OBJECT_KEY_HASH_LENGTH = 16;

export type DeliveryResult<T> = { ok: true; value: T } | { ok: false; error: string };

export interface DeliveryPolicy {
    /** Largest user-data, in decoded bytes, Linode Metadata gets. */
    limitBytes: number;
    /** Whether this node's image's cloud-init decompresses gzipped user-data. */
    gzipAccepted: boolean;
}

/** The choice for one node, with the sizes that led to it (logged and shown in the plan). */
export interface DeliveryChoice {
    method: DeliveryMethod;
    /** UTF-8 bytes of the cloud-config as rendered. */
    rawBytes: number;
    /** Bytes of its gzip; present whenever the raw text did not fit. */
    gzipBytes?: number;
    limitBytes: number;
    /** One sentence on why this method, for the log and the plan. */
    reason: string;
}

/**
 * Inline when the decoded bytes are at most the limit. The limit is
 * inclusive: Cluster API Provider Linode's `size < limit` sent data of
 * exactly the limit the long way round.
 */
export function fitsMetadata(bytes: number, limitBytes: number): boolean {
    return bytes <= limitBytes;
}

export function gzipAcceptedFor(image: string, gzipUserDataImages: readonly string[]): boolean {
    return gzipUserDataImages.includes(image);
}

/** gzip of the text, byte-for-byte the same for the same text on any machine. */
export function gzipUserData(text: string): Buffer {
    const compressed = zlib.gzipSync(Buffer.from(text, "utf8"), { level: GZIP_LEVEL });
    compressed[GZIP_HEADER_OS_BYTE_OFFSET] = GZIP_HEADER_OS_UNKNOWN;
    return compressed;
}

function limitProblem(limitBytes: number): string | undefined {
    if (Number.isInteger(limitBytes) && limitBytes >= METADATA_LIMIT_MIN_BYTES && limitBytes <= LINODE_METADATA_HARD_LIMIT_BYTES) return undefined;
    return `meshstack:metadataLimitBytes is ${limitBytes}; allowed: an integer from ${METADATA_LIMIT_MIN_BYTES} to ${LINODE_METADATA_HARD_LIMIT_BYTES}`;
}

/** Inline, else gzip (only where accepted), else object. Sizes are of the unencoded bytes. */
export function chooseDelivery(cloudConfig: string, policy: DeliveryPolicy): DeliveryResult<DeliveryChoice> {
    const problem = limitProblem(policy.limitBytes);
    if (problem) return { ok: false, error: problem };
    const rawBytes = Buffer.byteLength(cloudConfig, "utf8");
    if (rawBytes === 0) return { ok: false, error: "the cloud-config is empty; a node needs its bootstrap" };
    const limitBytes = policy.limitBytes;
    if (fitsMetadata(rawBytes, limitBytes)) {
        return { ok: true, value: { method: "inline", rawBytes, limitBytes, reason: `${rawBytes} bytes fit the ${limitBytes}-byte limit` } };
    }
    const gzipBytes = gzipUserData(cloudConfig).length;
    const sizes = { rawBytes, gzipBytes, limitBytes };
    if (!policy.gzipAccepted) {
        return { ok: true, value: { method: "object", ...sizes, reason: "over the limit, and the image is not in meshstack:gzipUserDataImages" } };
    }
    if (fitsMetadata(gzipBytes, limitBytes)) {
        return { ok: true, value: { method: "gzip", ...sizes, reason: `gzip (${gzipBytes} bytes) fits the ${limitBytes}-byte limit` } };
    }
    return { ok: true, value: { method: "object", ...sizes, reason: `over the limit even gzipped (${gzipBytes} bytes)` } };
}

/**
 * What the offline plan and the component call for one node: the choice
 * under the stack's bootstrap settings for the node's image.
 */
export function planBootstrapDelivery(cloudConfig: string, image: string, bootstrap: BootstrapConfig): DeliveryResult<DeliveryChoice> {
    return chooseDelivery(cloudConfig, {
        limitBytes: bootstrap.metadataLimitBytes,
        gzipAccepted: gzipAcceptedFor(image, bootstrap.gzipUserDataImages),
    });
}

/** One line for `pulumi up` and the plan. */
export function describeDelivery(choice: DeliveryChoice): string {
    const gzip = choice.gzipBytes === undefined ? "" : `, gzip ${choice.gzipBytes} bytes`;
    return `bootstrap delivery: ${choice.method} (raw ${choice.rawBytes} bytes${gzip}, limit ${choice.limitBytes}): ${choice.reason}`;
}

/**
 * The include file cloud-init fetches the real cloud-config through: the
 * header line, then the URL on a line of its own. cloud-init strips each
 * line and skips lines starting with "#", so a URL must be one line with no
 * whitespace and must not start with "#".
 */
export function renderIncludePointer(url: string): DeliveryResult<string> {
    if (!/^https?:\/\/\S+$/.test(url)) {
        return { ok: false, error: "the bootstrap URL must be a single http(s) URL without whitespace" };
    }
    return { ok: true, value: `${INCLUDE_HEADER}\n${url}\n` };
}

/**
 * The bytes Linode Metadata carries, base64-encoded as its API wants.
 * `objectUrl` is only read for the object method.
 */
export function deliveredUserData(cloudConfig: string, choice: DeliveryChoice, objectUrl: string): DeliveryResult<string> {
    switch (choice.method) {
        case "inline":
            return { ok: true, value: Buffer.from(cloudConfig, "utf8").toString("base64") };
        case "gzip":
            return { ok: true, value: gzipUserData(cloudConfig).toString("base64") };
        case "object": {
            const pointer = renderIncludePointer(objectUrl);
            if (!pointer.ok) return pointer;
            const pointerBytes = Buffer.byteLength(pointer.value, "utf8");
            if (!fitsMetadata(pointerBytes, choice.limitBytes)) {
                return {
                    ok: false,
                    error: `the #include pointer is ${pointerBytes} bytes, over meshstack:metadataLimitBytes (${choice.limitBytes}); raise the limit`,
                };
            }
            return { ok: true, value: Buffer.from(pointer.value, "utf8").toString("base64") };
        }
    }
}

export interface BootstrapObjectKeyParts {
    /** The object store's bootstrap prefix (ends in "/"); its lifecycle rule is the backstop. */
    prefix: string;
    stack: string;
    /** The MeshNode's name. */
    node: string;
    /** Changes whenever the instance is replaced, so a replacement gets a fresh object to fetch. */
    generation: string;
    contentSha256: string;
}

/** `<prefix><stack>/<node>/<generation>-<hash>.cloud-config`: per stack, per node, per content. */
export function bootstrapObjectKey(parts: BootstrapObjectKeyParts): string {
    return `${parts.prefix}${parts.stack}/${parts.node}/${parts.generation}-${parts.contentSha256.slice(0, OBJECT_KEY_HASH_LENGTH)}.cloud-config`;
}
