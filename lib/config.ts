/**
 * Typed stack configuration. Every `meshstack:*` key is declared once in
 * CONFIG_KEYS (type, default, what is allowed); parseStackConfig turns the raw
 * string values Pulumi hands over into a StackConfig or into the complete
 * list of problems, so an operator fixes a stack file in one pass instead of
 * one `pulumi up` per mistake.
 */
import { NATS_SERVER_RELEASE, NatsServerRelease } from "./natsRelease";

export const CONFIG_NAMESPACE = "meshstack";

/**
 * The safe Linode Metadata user-data bound. The API reference says both
 * "unencoded data must not exceed 65535 bytes" and "about 16kb encoded";
 * Cluster API Provider Linode enforces 16384 decoded bytes, so that is the
 * default here. Operators can raise it up to the documented hard ceiling.
 */
export const LINODE_METADATA_SAFE_LIMIT_BYTES = 16384;
export const LINODE_METADATA_HARD_LIMIT_BYTES = 65535;
/** Below this even an #include pointer with its presigned URL may not fit. */
export const METADATA_LIMIT_MIN_BYTES = 1024;
/**
 * Linode reports an instance running when it powers on, before cloud-init
 * has fetched its #include URL; the bootstrap object is kept this long after
 * that so a slow first boot still finds it.
 */
export const BOOTSTRAP_CLEANUP_DELAY_DEFAULT_SECONDS = 300;
/** SigV4 presigned URLs are valid for at most seven days. */
export const SIGV4_MAX_EXPIRY_SECONDS = 7 * 24 * 60 * 60;
export const MAX_NATS_NODES = 7;

export type ConfigValue = string | number | boolean | string[];

/**
 * A PEM-framed text. Stand-ins and test values are built with it, so no
 * file holds a literal private-key header that secret scanners would flag.
 */
export function pemBlock(label: string, body: string): string {
    return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

export interface ConfigError {
    /** Fully qualified key, e.g. `meshstack:natsNodeCount`. */
    key: string;
    /** The offending raw value as the operator wrote it (redacted for secrets). */
    value?: string;
    /** What is wrong and what is allowed. */
    message: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; errors: ConfigError[] };

type Check = (value: ConfigValue) => string | undefined;

interface KeySpec {
    type: "string" | "integer" | "boolean" | "array";
    description: string;
    /** Human description of the allowed values, used in every error for this key. */
    allowed: string;
    default?: ConfigValue;
    /** The value must be supplied with `pulumi config set --secret`. */
    secret?: boolean;
    /** What the offline plan uses for this key, since it never decrypts secrets. */
    offlineStandIn?: string;
    check?: Check;
}

const LINODE_REGION = /^[a-z]{2}-[a-z]+(-[0-9])?$/;
const LINODE_TYPE = /^g[0-9]+-[a-z0-9-]+$/;
const LINODE_IMAGE = /^(linode|private)\/[A-Za-z0-9._-]+$/;
const SSH_PUBLIC_KEY = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/=]+( .*)?$/;

function matches(pattern: RegExp): Check {
    return (v) => (typeof v === "string" && pattern.test(v) ? undefined : "does not match");
}

function intRange(min: number, max: number): Check {
    return (v) => (typeof v === "number" && v >= min && v <= max ? undefined : "out of range");
}

function oneOf(...values: string[]): Check {
    return (v) => (typeof v === "string" && values.includes(v) ? undefined : "not one of the allowed values");
}

function each(check: Check): Check {
    return (v) => {
        if (!Array.isArray(v)) return "not a list";
        const bad = v.map((item, i) => [i, check(item)] as const).find(([, problem]) => problem);
        return bad ? `item ${bad[0]} (${JSON.stringify(v[bad[0]])}) ${bad[1]}` : undefined;
    };
}

/** IPv4 or IPv6 CIDR with a prefix length that is valid for its family. */
export function isCidr(value: string): boolean {
    const [address, prefix, ...rest] = value.split("/");
    if (rest.length || prefix === undefined || !/^[0-9]{1,3}$/.test(prefix)) return false;
    const bits = Number(prefix);
    if (isIpv4(address)) return bits <= 32;
    return isIpv6(address) && bits <= 128;
}

export function isIpv4(value: string): boolean {
    const parts = value.split(".");
    return parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

function isIpv6(value: string): boolean {
    return /^[0-9a-fA-F:]+$/.test(value) && value.includes(":") && (value.match(/::/g) ?? []).length <= 1;
}

const cidr: Check = (v) => (typeof v === "string" && isCidr(v) ? undefined : "is not a CIDR");
const interfaceAddress: Check = (v) =>
    typeof v === "string" && isCidr(v) && isIpv4(v.split("/")[0]) ? undefined : "is not an IPv4 address with prefix";
const httpsUrl: Check = (v) => (typeof v === "string" && /^https?:\/\/[^/\s]+\/?$/.test(v) ? undefined : "is not a URL");

/** Every stack key, its type, default and rule. Pulumi.yaml declares the same keys (a test keeps them equal). */
export const CONFIG_KEYS: Record<string, KeySpec> = {
    region: {
        type: "string", default: "us-east", check: matches(LINODE_REGION),
        description: "Linode region for every instance.", allowed: "a Linode region id such as us-east or de-fra-2",
    },
    sshAuthorizedKeys: {
        type: "array", default: [], check: each(matches(SSH_PUBLIC_KEY)),
        description: "SSH public keys installed for root on every instance (break-glass access).",
        allowed: "a list of OpenSSH public keys (ssh-ed25519, ssh-rsa, ecdsa-sha2-*)",
    },
    breakGlassSshCidrs: {
        type: "array", default: [], check: each(cidr),
        description: "Source CIDRs allowed to reach tcp/22 on every instance. Empty keeps tcp/22 closed.",
        allowed: "a list of IPv4/IPv6 CIDRs such as 203.0.113.7/32",
    },
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
        type: "string", check: httpsUrl,
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
    bootstrapUrlExpirySeconds: {
        type: "integer", default: 3600, check: intRange(60, SIGV4_MAX_EXPIRY_SECONDS),
        description: "Lifetime of presigned bootstrap URLs baked into user-data.",
        allowed: `an integer from 60 to ${SIGV4_MAX_EXPIRY_SECONDS} (SigV4's seven days)`,
    },
    bootstrapCleanupDelaySeconds: {
        type: "integer", default: BOOTSTRAP_CLEANUP_DELAY_DEFAULT_SECONDS, check: intRange(0, 3600),
        description: "Seconds a bootstrap object is kept after its instance reports running, so cloud-init can fetch it, before it is deleted.",
        allowed: "an integer from 0 to 3600",
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
    wgCacheInstanceType: {
        type: "string", default: "g6-nanode-1", check: matches(LINODE_TYPE),
        description: "Linode type of the WireGuard cache/gateway node.", allowed: "a Linode type id such as g6-nanode-1",
    },
    wgCacheImage: {
        type: "string", default: "linode/debian12", check: matches(LINODE_IMAGE),
        description: "Image of the WireGuard cache/gateway node.", allowed: "a Linode image id such as linode/debian12",
    },
    wgListenPort: {
        type: "integer", default: 51820, check: intRange(1024, 65535),
        description: "UDP port WireGuard listens on.", allowed: "an integer from 1024 to 65535",
    },
    wgCacheAddress: {
        type: "string", default: "10.44.0.1/24", check: interfaceAddress,
        description: "The cache node's wg0 address; the NATS nodes take addresses from the same subnet.",
        allowed: "an IPv4 interface address with prefix, such as 10.44.0.1/24",
    },
    wgPubkeyPollTimeoutSeconds: {
        type: "integer", default: 480, check: intRange(30, 3600),
        description: "How long `pulumi up` waits for the cache node to publish its WireGuard public key.",
        allowed: "an integer from 30 to 3600",
    },
    natsNodeCount: {
        type: "integer", default: 3,
        check: (v) => (typeof v === "number" && v >= 1 && v <= MAX_NATS_NODES && v % 2 === 1 ? undefined : "not allowed"),
        description: "Number of NATS JetStream servers (odd, so RAFT keeps a majority).",
        allowed: `an odd integer from 1 to ${MAX_NATS_NODES}`,
    },
    natsInstanceType: {
        type: "string", default: "g6-standard-1", check: matches(LINODE_TYPE),
        description: "Linode type of each NATS node.", allowed: "a Linode type id such as g6-standard-1",
    },
    natsImage: {
        type: "string", default: "linode/debian12", check: matches(LINODE_IMAGE),
        description: "Image of each NATS node.", allowed: "a Linode image id such as linode/debian12",
    },
    natsClusterName: {
        type: "string", default: "meshstack", check: matches(/^[a-zA-Z0-9_-]{1,32}$/),
        description: "NATS cluster name.", allowed: "1 to 32 letters, digits, _ or -",
    },
    natsClientCidrs: {
        type: "array", default: [], check: each(cidr),
        description: "Source CIDRs allowed to reach the NATS client port. Empty keeps it closed to the internet.",
        allowed: "a list of IPv4/IPv6 CIDRs",
    },
    natsKvReplicas: {
        type: "integer", default: 1, check: intRange(1, MAX_NATS_NODES),
        description: "Replicas of the control-plane KV bucket; raise 1 -> 3 in place once the cluster is up.",
        allowed: "an integer from 1 to natsNodeCount",
    },
    natsClientCaCertPem: {
        type: "string", check: matches(/^-----BEGIN CERTIFICATE-----/),
        description: "Existing client CA certificate (PEM) to sign the data-plane certs; generated when unset.",
        allowed: "a PEM certificate, set together with natsClientCaKeyPem",
    },
    natsClientCaKeyPem: {
        type: "string", secret: true, check: matches(/^-----BEGIN ([A-Z]+ )?PRIVATE KEY-----/),
        offlineStandIn: pemBlock("PRIVATE KEY", "offline plan stand-in"),
        description: "Private key of natsClientCaCertPem.",
        allowed: "a PEM private key set with --secret, together with natsClientCaCertPem",
    },
    natsDnsDomain: {
        type: "string", check: matches(/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/),
        description: "Linode DNS domain for the NATS nodes' names (in their certificates) and A records; unset: no DNS names.",
        allowed: "a lowercase domain managed in Linode DNS, such as example.net",
    },
    natsKvBucket: {
        type: "string", check: matches(/^[A-Za-z0-9_-]{1,64}$/),
        description: "Control-plane KV bucket the deploy creates over the client port (needs the deployer inside natsClientCidrs); unset: none.",
        allowed: "1 to 64 letters, digits, _ or -",
    },
    natsServerDownloadUrl: {
        type: "string", default: NATS_SERVER_RELEASE.urlTemplate,
        check: (v) => (typeof v === "string" && /^https?:\/\/[^\s"`$\\]+$/.test(v) && v.includes("{arch}") ? undefined : "is not allowed"),
        description: `Where the nodes download the nats-server ${NATS_SERVER_RELEASE.version} release tarball ({version} and {arch} are filled in): the release site, or a private mirror of the same files.`,
        allowed: "an http(s) URL containing {arch}, without spaces, quotes, backslashes or $, such as https://mirror.example.net/nats/{version}/nats-server-{version}-linux-{arch}.tar.gz",
    },
    natsServerSha256Amd64: {
        type: "string", default: NATS_SERVER_RELEASE.sha256.amd64, check: matches(/^[0-9a-f]{64}$/),
        description: "sha256 of the amd64 nats-server tarball; the node refuses any other bytes.", allowed: "64 lowercase hex digits",
    },
    natsServerSha256Arm64: {
        type: "string", default: NATS_SERVER_RELEASE.sha256.arm64, check: matches(/^[0-9a-f]{64}$/),
        description: "sha256 of the arm64 nats-server tarball; the node refuses any other bytes.", allowed: "64 lowercase hex digits",
    },
};

export interface ObjectStoreConfig {
    kind: "linode" | "s3";
    region: string;
    /** Only for kind s3. */
    endpoint?: string;
    bootstrapPrefix: string;
    bootstrapObjectExpiryDays: number;
}

export interface BootstrapConfig {
    metadataLimitBytes: number;
    gzipUserDataImages: string[];
    urlExpirySeconds: number;
    /** Defaults to BOOTSTRAP_CLEANUP_DELAY_DEFAULT_SECONDS. */
    cleanupDelaySeconds?: number;
}

export interface AccessConfig {
    sshAuthorizedKeys: string[];
    breakGlassSshCidrs: string[];
}

export interface WgCacheConfig {
    instanceType: string;
    image: string;
    listenPort: number;
    address: string;
    pubkeyPollTimeoutSeconds: number;
}

export interface NatsConfig {
    nodeCount: number;
    instanceType: string;
    image: string;
    clusterName: string;
    clientCidrs: string[];
    kvReplicas: number;
    /** An existing client CA, when the operator brings one. */
    clientCa?: { certPem: string; keyPem: string };
    dnsDomain?: string;
    /** The control-plane KV bucket the deploy creates, when set. */
    kvBucket?: string;
    /** Where the nodes get nats-server and the checksums they check. */
    serverRelease: NatsServerRelease;
}

export interface StackConfig {
    region: string;
    access: AccessConfig;
    objectStore: ObjectStoreConfig;
    bootstrap: BootstrapConfig;
    wgCache: WgCacheConfig;
    nats: NatsConfig;
}

export interface RawConfig {
    /** Fully qualified key -> the string Pulumi stores (arrays as JSON). */
    values: Record<string, string>;
    /** Fully qualified keys that were set with --secret. */
    secretKeys: ReadonlySet<string>;
}

const PLACEHOLDER = /<[^<>]*>|CHANGEME|CHANGE_ME|\bTODO\b|\bFIXME\b/i;

export function qualify(key: string): string {
    return `${CONFIG_NAMESPACE}:${key}`;
}

export function isPlaceholder(raw: string): boolean {
    return PLACEHOLDER.test(raw);
}

function shown(spec: KeySpec, raw: string): string {
    return spec.secret ? "[secret]" : raw;
}

/** Converts one raw string to the key's type, or says why it cannot. */
function decode(spec: KeySpec, raw: string): { value?: ConfigValue; problem?: string } {
    switch (spec.type) {
        case "string":
            return { value: raw };
        case "integer":
            return /^-?[0-9]+$/.test(raw.trim()) ? { value: Number(raw.trim()) } : { problem: "is not an integer" };
        case "boolean":
            return raw === "true" || raw === "false" ? { value: raw === "true" } : { problem: "is not true or false" };
        case "array": {
            let parsed: unknown;
            try {
                parsed = JSON.parse(raw);
            } catch {
                return { problem: "is not a YAML/JSON list" };
            }
            if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === "string")) {
                return { problem: "is not a list of strings" };
            }
            const placeholder = parsed.find((x) => x === "" || isPlaceholder(x));
            if (placeholder !== undefined) return { problem: `holds a placeholder or empty item (${JSON.stringify(placeholder)})` };
            return { value: parsed };
        }
    }
}

function closestKey(unknown: string): string | undefined {
    const distance = (a: string, b: string): number => {
        const row = Array.from({ length: b.length + 1 }, (_, i) => i);
        for (let i = 1; i <= a.length; i++) {
            let prev = row[0];
            row[0] = i;
            for (let j = 1; j <= b.length; j++) {
                const tmp = row[j];
                row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
                prev = tmp;
            }
        }
        return row[b.length];
    };
    const [best] = Object.keys(CONFIG_KEYS)
        .map((k) => [k, distance(unknown, k)] as const)
        .sort((a, b) => a[1] - b[1]);
    return best && best[1] <= 3 ? best[0] : undefined;
}

/** Per-key parsing: type, placeholder, rule and secrecy, plus unknown keys. */
function parseKeys(raw: RawConfig): { values: Record<string, ConfigValue>; errors: ConfigError[] } {
    const errors: ConfigError[] = [];
    const values: Record<string, ConfigValue> = {};
    const prefix = `${CONFIG_NAMESPACE}:`;
    for (const fullKey of Object.keys(raw.values)) {
        if (!fullKey.startsWith(prefix)) continue;
        const key = fullKey.slice(prefix.length);
        if (!(key in CONFIG_KEYS)) {
            const hint = closestKey(key);
            errors.push({
                key: fullKey,
                message: `unknown key${hint ? `; did you mean ${qualify(hint)}?` : ""} (see Pulumi.yaml for every key)`,
            });
        }
    }
    for (const [key, spec] of Object.entries(CONFIG_KEYS)) {
        const fullKey = qualify(key);
        const rawValue = raw.values[fullKey];
        if (rawValue === undefined) {
            if (spec.default !== undefined) values[key] = spec.default;
            continue;
        }
        const fail = (problem: string) =>
            errors.push({ key: fullKey, value: shown(spec, rawValue), message: `${problem}; allowed: ${spec.allowed}` });
        if (rawValue.trim() === "") {
            fail("is empty");
            continue;
        }
        if (spec.type !== "array" && isPlaceholder(rawValue)) {
            fail("is still a placeholder");
            continue;
        }
        if (spec.secret && !raw.secretKeys.has(fullKey)) {
            fail("must be set with `pulumi config set --secret` so it is encrypted in the stack file");
            continue;
        }
        const { value, problem } = decode(spec, rawValue);
        if (problem || value === undefined) {
            fail(problem ?? "cannot be read");
            continue;
        }
        const ruleProblem = spec.check?.(value);
        if (ruleProblem) {
            fail(ruleProblem);
            continue;
        }
        values[key] = value;
    }
    return { values, errors };
}

function s3EndpointRule(v: Record<string, ConfigValue>): ConfigError | undefined {
    if (v.objectStoreKind === "s3" && v.objectStoreEndpoint === undefined) {
        return { key: qualify("objectStoreEndpoint"), message: "is required when objectStoreKind is s3; allowed: " + CONFIG_KEYS.objectStoreEndpoint.allowed };
    }
    if (v.objectStoreKind === "linode" && v.objectStoreEndpoint !== undefined) {
        return {
            key: qualify("objectStoreEndpoint"), value: String(v.objectStoreEndpoint),
            message: "must not be set when objectStoreKind is linode (the bucket's own endpoint is used); allowed: unset",
        };
    }
    return undefined;
}

function kvReplicasRule(v: Record<string, ConfigValue>): ConfigError | undefined {
    const replicas = v.natsKvReplicas as number | undefined;
    const nodes = v.natsNodeCount as number | undefined;
    if (replicas !== undefined && nodes !== undefined && replicas > nodes) {
        return {
            key: qualify("natsKvReplicas"), value: String(replicas),
            message: `exceeds natsNodeCount (${nodes}); allowed: an integer from 1 to ${nodes}`,
        };
    }
    return undefined;
}

function clientCaPairRule(v: Record<string, ConfigValue>): ConfigError | undefined {
    const hasCert = v.natsClientCaCertPem !== undefined;
    const hasKey = v.natsClientCaKeyPem !== undefined;
    if (hasCert === hasKey) return undefined;
    const missing = hasCert ? "natsClientCaKeyPem" : "natsClientCaCertPem";
    return { key: qualify(missing), message: `is required when ${hasCert ? "natsClientCaCertPem" : "natsClientCaKeyPem"} is set; allowed: both or neither` };
}

/** Rules that relate two or more keys; each checked only when its inputs parsed. */
const CROSS_KEY_RULES = [s3EndpointRule, kvReplicasRule, clientCaPairRule];

export function parseStackConfig(raw: RawConfig): Result<StackConfig> {
    const { values, errors } = parseKeys(raw);
    for (const rule of CROSS_KEY_RULES) {
        const problem = rule(values);
        if (problem) errors.push(problem);
    }
    if (errors.length) return { ok: false, errors };
    const v = values as Record<string, never>;
    return {
        ok: true,
        value: {
            region: v.region,
            access: { sshAuthorizedKeys: v.sshAuthorizedKeys, breakGlassSshCidrs: v.breakGlassSshCidrs },
            objectStore: {
                kind: v.objectStoreKind,
                region: v.objectStoreRegion,
                endpoint: v.objectStoreEndpoint,
                bootstrapPrefix: v.bootstrapPrefix,
                bootstrapObjectExpiryDays: v.bootstrapObjectExpiryDays,
            },
            bootstrap: {
                metadataLimitBytes: v.metadataLimitBytes,
                gzipUserDataImages: v.gzipUserDataImages,
                urlExpirySeconds: v.bootstrapUrlExpirySeconds,
                cleanupDelaySeconds: v.bootstrapCleanupDelaySeconds,
            },
            wgCache: {
                instanceType: v.wgCacheInstanceType,
                image: v.wgCacheImage,
                listenPort: v.wgListenPort,
                address: v.wgCacheAddress,
                pubkeyPollTimeoutSeconds: v.wgPubkeyPollTimeoutSeconds,
            },
            nats: {
                nodeCount: v.natsNodeCount,
                instanceType: v.natsInstanceType,
                image: v.natsImage,
                clusterName: v.natsClusterName,
                clientCidrs: v.natsClientCidrs,
                kvReplicas: v.natsKvReplicas,
                clientCa: v.natsClientCaCertPem ? { certPem: v.natsClientCaCertPem, keyPem: v.natsClientCaKeyPem } : undefined,
                dnsDomain: v.natsDnsDomain,
                kvBucket: v.natsKvBucket,
                serverRelease: {
                    version: NATS_SERVER_RELEASE.version,
                    urlTemplate: v.natsServerDownloadUrl,
                    sha256: { amd64: v.natsServerSha256Amd64, arm64: v.natsServerSha256Arm64 },
                },
            },
        },
    };
}

/** One line per problem, for the CLI and for the error `pulumi up` shows. */
export function formatConfigErrors(errors: ConfigError[]): string {
    const lines = errors.map((e) => `  - ${e.key}${e.value !== undefined ? ` = ${JSON.stringify(e.value)}` : ""}: ${e.message}`);
    return `invalid stack configuration (${errors.length} problem${errors.length === 1 ? "" : "s"}):\n${lines.join("\n")}`;
}
