/** How a node gets its bootstrap: inline user-data within Linode Metadata's limit, or presigned URLs and how long they live. */
import {
    LINODE_METADATA_HARD_LIMIT_BYTES,
    LINODE_METADATA_SAFE_LIMIT_BYTES,
    METADATA_LIMIT_MIN_BYTES,
    SIGV4_MAX_EXPIRY_SECONDS,
} from "../limits";
import { CheckedValues, CrossKeyRule, each, intRange, KeySpec, matches } from "./keySpec";
import { qualify } from "./report";
import { LINODE_IMAGE } from "./shapes";

export interface BootstrapConfig {
    metadataLimitBytes: number;
    gzipUserDataImages: string[];
    urlExpirySeconds: number;
}

export const bootstrapKeys = {
    bootstrapUrlExpirySeconds: {
        type: "integer", default: 3600, check: intRange(60, SIGV4_MAX_EXPIRY_SECONDS),
        description: "Lifetime of presigned bootstrap URLs baked into user-data.",
        allowed: `an integer from 60 to ${SIGV4_MAX_EXPIRY_SECONDS} (SigV4's seven days)`,
    },
    metadataLimitBytes: {
        type: "integer", default: LINODE_METADATA_SAFE_LIMIT_BYTES, check: intRange(METADATA_LIMIT_MIN_BYTES, LINODE_METADATA_HARD_LIMIT_BYTES),
        description: "Largest decoded user-data delivered inline through Linode Metadata.",
        allowed: `an integer from ${METADATA_LIMIT_MIN_BYTES} to ${LINODE_METADATA_HARD_LIMIT_BYTES}`,
    },
    gzipUserDataImages: {
        type: "array", default: [], check: each(matches(LINODE_IMAGE)),
        description: "Images whose cloud-init is known to accept gzipped Linode user-data.",
        allowed: "a list of Linode image ids such as linode/debian12",
    },
} satisfies Record<string, KeySpec>;

/**
 * A node publishes its WireGuard key through a presigned PUT URL that lives
 * bootstrapUrlExpirySeconds; `pulumi up` waits wgPubkeyPollTimeoutSeconds
 * for it. A URL that dies first turns a slow boot into a failed wait.
 */
export const urlLifetimeRule: CrossKeyRule = (v) => {
    const lifetime = v.bootstrapUrlExpirySeconds;
    const poll = v.wgPubkeyPollTimeoutSeconds;
    if (typeof lifetime !== "number" || typeof poll !== "number" || lifetime >= poll) return undefined;
    return {
        key: qualify("bootstrapUrlExpirySeconds"), value: String(lifetime),
        message: `is shorter than meshstack:wgPubkeyPollTimeoutSeconds (${poll}): a node that boots late in that wait finds its presigned publish URL expired and cannot publish its key in time; allowed: an integer from ${poll} to ${SIGV4_MAX_EXPIRY_SECONDS}, or a wgPubkeyPollTimeoutSeconds of at most ${lifetime}`,
    };
};

export function bootstrapConfig(v: CheckedValues): BootstrapConfig {
    return {
        metadataLimitBytes: v.metadataLimitBytes,
        gzipUserDataImages: v.gzipUserDataImages,
        urlExpirySeconds: v.bootstrapUrlExpirySeconds,
    };
}
