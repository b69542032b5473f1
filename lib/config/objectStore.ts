/** The object store behind the bootstrap bucket: its kind, region and endpoint, and the bootstrap objects' prefix and expiry. */
import { CheckedValues, CrossKeyRule, intRange, KeySpec, matches, oneOf } from "./keySpec";
import { qualify } from "./report";
import { endpointUrl } from "./shapes";

export interface ObjectStoreConfig {
    kind: "linode" | "s3";
    region: string;
    /** Only for kind s3. */
    endpoint?: string;
    bootstrapPrefix: string;
    bootstrapObjectExpiryDays: number;
    /** Which agents' key the stack makes (kind linode): raising it rotates the key (lib/agentKey.ts). */
    agentKeyGeneration: number;
}

export const objectStoreKeys = {
    objectStoreKind: {
        type: "string", default: "linode", check: oneOf("linode", "s3"),
        description: "Which object store backs the bootstrap bucket.", allowed: "linode or s3",
    },
    objectStoreRegion: {
        type: "string", default: "us-east",
        check: (v) => (typeof v === "string" && /^[a-z0-9-]{2,32}$/.test(v) ? undefined : "does not match"),
        description: "Linode Object Storage region (kind linode) or the S3 signing region (kind s3).",
        allowed: "a region id such as us-east (linode) or us-east-1 (s3)",
    },
    objectStoreEndpoint: {
        type: "string", optional: true, check: endpointUrl(["http", "https"]),
        description: "S3 endpoint URL; required for kind s3, derived from the bucket for kind linode.",
        allowed: "an http(s) URL with no path, such as https://s3.us-east-1.amazonaws.com",
    },
    bootstrapPrefix: {
        type: "string", default: "bootstrap/", check: matches(/^[a-z0-9][a-z0-9-]*(\/[a-z0-9][a-z0-9-]*)*\/$/),
        description: "Object key prefix for bootstrap objects; a lifecycle rule expires everything under it.",
        allowed: "lowercase path segments ending in /, such as bootstrap/",
    },
    bootstrapObjectExpiryDays: {
        type: "integer", default: 1, check: intRange(1, 30),
        description: "Days after which the lifecycle rule deletes objects under bootstrapPrefix.",
        allowed: "an integer from 1 to 30",
    },
    agentKeyGeneration: {
        type: "integer", default: 1, check: intRange(1, 9999),
        description: "The agents' key's generation (kind linode). Raise it by one to rotate the key the nodes read their desired state with: one `pulumi up` makes the new key, every node switches to it in place, and the old key is deleted once every node reports the new one. Replaces nothing. Kind s3 rotates through MESHSTACK_AGENT_ACCESS_KEY_ID instead.",
        allowed: "an integer from 1 to 9999 (1 unless rotated; kind s3: 1)",
    },
} satisfies Record<string, KeySpec>;

/** Kind s3's agents' key is the operator's (outside this stack's IAM): it rotates by its environment variables. */
export const s3AgentKeyRule: CrossKeyRule = (v) =>
    v.objectStoreKind === "s3" && v.agentKeyGeneration !== 1
        ? {
            key: qualify("agentKeyGeneration"), value: String(v.agentKeyGeneration),
            message: "must stay 1 when objectStoreKind is s3: that store's agents' key is yours, rotate it by setting MESHSTACK_AGENT_ACCESS_KEY_ID and MESHSTACK_AGENT_SECRET_ACCESS_KEY to the new key and running `pulumi up` (README, Rotating the agents' key); allowed: 1",
        }
        : undefined;

export const s3EndpointRule: CrossKeyRule = (v) => {
    if (v.objectStoreKind === "s3" && v.objectStoreEndpoint === undefined) {
        return { key: qualify("objectStoreEndpoint"), message: "is required when objectStoreKind is s3; allowed: " + objectStoreKeys.objectStoreEndpoint.allowed };
    }
    if (v.objectStoreKind === "linode" && v.objectStoreEndpoint !== undefined) {
        return {
            key: qualify("objectStoreEndpoint"), value: String(v.objectStoreEndpoint),
            message: "must not be set when objectStoreKind is linode (the bucket's own endpoint is used); allowed: unset",
        };
    }
    return undefined;
};

export function objectStoreConfig(v: CheckedValues): ObjectStoreConfig {
    return {
        kind: v.objectStoreKind,
        region: v.objectStoreRegion,
        endpoint: v.objectStoreEndpoint,
        bootstrapPrefix: v.bootstrapPrefix,
        bootstrapObjectExpiryDays: v.bootstrapObjectExpiryDays,
        agentKeyGeneration: v.agentKeyGeneration,
    };
}
