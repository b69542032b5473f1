/** The NATS JetStream cluster: its nodes and their images, the client port, the KV bucket, the client CA, DNS names and the nats-server release. */
import { JETSTREAM_MAX_REPLICAS, MAX_NATS_NODES } from "../limits";
import { NATS_SERVER_RELEASE, NATS_SERVER_VERSION_PATTERN, NatsServerRelease } from "../natsRelease";
import { EVERY_STREAM, isAcceptedStreamEntry, MAX_NATS_REJOIN_TIMEOUT_SECONDS, MIN_NATS_REJOIN_TIMEOUT_SECONDS, NATS_NODE_IMAGE_FORMAT, parseNatsNodeImages } from "../natsRollout";
import { CheckedValues, CrossKeyRule, each, intRange, KeySpec, matches, pemBlock, stringList } from "./keySpec";
import { qualify } from "./report";
import { certificatePem, cidr, cidrIdentity, isLinodeImage, LINODE_IMAGE, LINODE_TYPE } from "./shapes";

export interface NatsConfig {
    nodeCount: number;
    instanceType: string;
    image: string;
    /** Images by node index that differ from `image` (meshstack:natsNodeImages): an image change rolled one node per up. */
    nodeImages: Record<number, string>;
    clusterName: string;
    clientCidrs: string[];
    kvReplicas: number;
    /** An existing client CA, when the operator brings one. */
    clientCa?: { certPem: string; keyPem: string };
    dnsDomain?: string;
    /** The control-plane KV bucket the deploy creates, when set. */
    kvBucket?: string;
    /** Seconds an `up` waits for a created or replaced node to be current again; 0: no wait. */
    rejoinTimeoutSeconds: number;
    /** Where the nodes get nats-server and the checksums they check. */
    serverRelease: NatsServerRelease;
}

export const natsKeys = {
    natsNodeCount: {
        type: "integer", default: 3,
        check: (v) => (typeof v === "number" && v >= 1 && v <= MAX_NATS_NODES && v % 2 === 1 ? undefined : "not allowed"),
        description: "Number of NATS JetStream servers (odd, so RAFT keeps a majority).",
        allowed: `an odd integer from 1 to ${MAX_NATS_NODES}`,
    },
    natsInstanceType: {
        type: "string", default: "g6-standard-1", check: matches(LINODE_TYPE),
        description: "Linode type of each NATS node.",
        allowed: "a Linode type id such as g6-standard-1, in lib/linodeCatalog.json or meshstack:linodeCatalogExtraIds",
    },
    natsImage: {
        type: "string", default: "linode/debian12", check: matches(LINODE_IMAGE),
        description: "Image of each NATS node.", allowed: "a Linode image id such as linode/debian12",
    },
    natsNodeImages: {
        type: "array", default: [], check: stringList,
        description: "Per-node images instead of natsImage: how an image change is rolled, one node per up (a change of more than one existing node's image is refused).",
        allowed: `a list of ${NATS_NODE_IMAGE_FORMAT}, each index below natsNodeCount, each node once`,
    },
    natsClusterName: {
        type: "string", default: "meshstack", check: matches(/^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$/),
        description: "NATS cluster name; node hostnames and the service's DNS name are built from it.",
        allowed: "1 to 32 letters, digits or -, starting and ending with a letter or digit (it becomes part of DNS names)",
    },
    natsClientCidrs: {
        type: "array", default: [], check: each(cidr), itemIdentity: cidrIdentity,
        description: "Source CIDRs allowed to reach the NATS client port. Empty keeps it closed to the internet.",
        allowed: "a list of distinct IPv4/IPv6 CIDRs written as networks (no host bits), such as 198.51.100.0/24",
    },
    natsKvReplicas: {
        type: "integer", default: 1, check: intRange(1, JETSTREAM_MAX_REPLICAS),
        description: "Replicas of the control-plane KV bucket; raise 1 -> 3 in place once the cluster is up.",
        allowed: `an integer from 1 to ${JETSTREAM_MAX_REPLICAS} (JetStream's maximum) and at most natsNodeCount`,
    },
    natsClientCaCertPem: {
        type: "string", optional: true,
        check: certificatePem("a certificate", "the CA's key goes in meshstack:natsClientCaKeyPem, set with --secret", /^-----BEGIN CERTIFICATE-----/),
        description: "Existing client CA certificate (PEM) to sign the data-plane certs; generated when unset.",
        allowed: "a PEM certificate, set together with natsClientCaKeyPem",
    },
    natsClientCaKeyPem: {
        type: "string", optional: true, secret: true, check: matches(/^-----BEGIN ([A-Z]+ )?PRIVATE KEY-----/),
        offlineStandIn: pemBlock("PRIVATE KEY", "offline plan stand-in"),
        description: "Private key of natsClientCaCertPem.",
        allowed: "a PEM private key set with --secret, together with natsClientCaCertPem",
    },
    natsDnsDomain: {
        type: "string", optional: true, check: matches(/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/),
        description: "Linode DNS domain for the NATS nodes' names (in their certificates) and A records; unset: no DNS names.",
        allowed: "a lowercase domain managed in Linode DNS, such as example.net",
    },
    natsRejoinTimeoutSeconds: {
        type: "integer", default: 0, check: (v) => (v === 0 || (typeof v === "number" && v >= MIN_NATS_REJOIN_TIMEOUT_SECONDS && v <= MAX_NATS_REJOIN_TIMEOUT_SECONDS) ? undefined : "out of range"),
        description: "How long `pulumi up` waits, after it creates or replaces a NATS node, for that node to serve JetStream with every stream replica on it current (over the client port: needs the deployer inside natsClientCidrs); 0: no wait, the operator checks /healthz before the next step.",
        allowed: `0, or an integer from ${MIN_NATS_REJOIN_TIMEOUT_SECONDS} to ${MAX_NATS_REJOIN_TIMEOUT_SECONDS}`,
    },
    natsAcceptStreamLoss: {
        type: "array", default: [], check: each((v) => (isAcceptedStreamEntry(v) ? undefined : "is not a stream name")),
        description: "Streams whose loss the stack accepts when a NATS node holding their only replica is replaced or removed (with natsRejoinTimeoutSeconds on, each such deletion is refused otherwise); \"*\" accepts any stream.",
        allowed: `a list of JetStream stream names (no spaces, ".", "*", ">", "/" or "\\"), such as KV_control, or "${EVERY_STREAM}" for every stream`,
    },
    natsKvBucket: {
        type: "string", optional: true, check: matches(/^[A-Za-z0-9_-]{1,64}$/),
        description: "Control-plane KV bucket the deploy creates over the client port (needs the deployer inside natsClientCidrs); unset: none.",
        allowed: "1 to 64 letters, digits, _ or -",
    },
    natsServerVersion: {
        type: "string", default: NATS_SERVER_RELEASE.version, check: matches(NATS_SERVER_VERSION_PATTERN),
        description: "The nats-server release the NATS nodes run: changing it (with the release's checksums) upgrades or downgrades them in place, one node at a time, in one `pulumi up`.",
        allowed: `a release tag such as ${NATS_SERVER_RELEASE.version} (v<major>.<minor>.<patch>, an optional -suffix), with natsServerSha256Amd64 and natsServerSha256Arm64 set to that release's checksums`,
    },
    natsServerDownloadUrl: {
        type: "string", default: NATS_SERVER_RELEASE.urlTemplate,
        check: (v) => (typeof v === "string" && /^https?:\/\/[^\s"'`$\\]+$/.test(v) && v.includes("{arch}") ? undefined : "is not allowed"),
        description: "Where the nodes download the natsServerVersion release tarball ({version} and {arch} are filled in): the release site, or a private mirror of the same files.",
        allowed: "an http(s) URL containing {arch}, without spaces, quotes, backslashes or $, such as https://mirror.example.net/nats/{version}/nats-server-{version}-linux-{arch}.tar.gz",
    },
    natsServerSha256Amd64: {
        type: "string", default: NATS_SERVER_RELEASE.sha256.amd64, check: matches(/^[0-9a-f]{64}$/),
        description: "sha256 of the amd64 nats-server tarball of natsServerVersion; the node refuses any other bytes.", allowed: "64 lowercase hex digits",
    },
    natsServerSha256Arm64: {
        type: "string", default: NATS_SERVER_RELEASE.sha256.arm64, check: matches(/^[0-9a-f]{64}$/),
        description: "sha256 of the arm64 nats-server tarball of natsServerVersion; the node refuses any other bytes.", allowed: "64 lowercase hex digits",
    },
} satisfies Record<string, KeySpec>;

/**
 * The default checksums are the pinned release's: with another version they
 * can only fail on the node, one upgrade attempt per node, so the config
 * check says it first.
 */
export const natsServerChecksumsRule: CrossKeyRule = (v) => {
    const version = v.natsServerVersion as string | undefined;
    if (version === undefined || version === NATS_SERVER_RELEASE.version) return undefined;
    const stale = (["amd64", "arm64"] as const).filter((arch) => v[`natsServerSha256${arch === "amd64" ? "Amd64" : "Arm64"}`] === NATS_SERVER_RELEASE.sha256[arch]);
    if (stale.length === 0) return undefined;
    const keys = stale.map((arch) => qualify(`natsServerSha256${arch === "amd64" ? "Amd64" : "Arm64"}`));
    return {
        key: keys[0], value: NATS_SERVER_RELEASE.sha256[stale[0]],
        message: `is ${NATS_SERVER_RELEASE.version}'s checksum, but meshstack:natsServerVersion is ${version}; allowed: the ${version} tarball's sha256 in ${keys.join(" and ")}`,
    };
};

export const kvReplicasRule: CrossKeyRule = (v) => {
    const replicas = v.natsKvReplicas as number | undefined;
    const nodes = v.natsNodeCount as number | undefined;
    if (replicas !== undefined && nodes !== undefined && replicas > nodes) {
        return {
            key: qualify("natsKvReplicas"), value: String(replicas),
            message: `exceeds natsNodeCount (${nodes}); allowed: an integer from 1 to ${nodes}`,
        };
    }
    return undefined;
};

export const clientCaPairRule: CrossKeyRule = (v) => {
    const hasCert = v.natsClientCaCertPem !== undefined;
    const hasKey = v.natsClientCaKeyPem !== undefined;
    if (hasCert === hasKey) return undefined;
    const missing = hasCert ? "natsClientCaKeyPem" : "natsClientCaCertPem";
    return { key: qualify(missing), message: `is required when ${hasCert ? "natsClientCaCertPem" : "natsClientCaKeyPem"} is set; allowed: both or neither` };
};

/**
 * What the deploy does over the NATS client port (the KV provider, the
 * rejoin wait) dials it from the deploying machine; with no client CIDRs the
 * firewall never lets it in. `off` is the value that turns the key off.
 */
export function needsClientPort(key: string, off: string): CrossKeyRule {
    return (v) => {
        const cidrs = v.natsClientCidrs as string[] | undefined;
        const value = v[key];
        if (value === undefined || value === 0 || cidrs === undefined || cidrs.length > 0) return undefined;
        return {
            key: qualify(key), value: String(value),
            message: `needs the machine running \`pulumi up\` inside meshstack:natsClientCidrs, which is empty, so the client port stays closed to it; allowed: ${off}, or set natsClientCidrs to include this machine's address`,
        };
    };
}

export const natsNodeImagesRule: CrossKeyRule = (v) => {
    const entries = v.natsNodeImages as string[] | undefined;
    const nodes = v.natsNodeCount as number | undefined;
    if (entries === undefined || nodes === undefined) return undefined;
    const parsed = parseNatsNodeImages(entries, nodes, isLinodeImage);
    return parsed.ok ? undefined : { key: qualify("natsNodeImages"), value: JSON.stringify(entries), message: `${parsed.error}; allowed: ${natsKeys.natsNodeImages.allowed}` };
};

/** The per-node images of a config that passed natsNodeImagesRule. */
function nodeImagesOf(entries: string[], nodeCount: number): Record<number, string> {
    const parsed = parseNatsNodeImages(entries, nodeCount, isLinodeImage);
    if (!parsed.ok) throw new Error(`${parsed.error} (natsNodeImagesRule should have refused this)`);
    return parsed.value;
}

export function natsConfig(v: CheckedValues): NatsConfig {
    return {
        nodeCount: v.natsNodeCount,
        instanceType: v.natsInstanceType,
        image: v.natsImage,
        nodeImages: nodeImagesOf(v.natsNodeImages, v.natsNodeCount),
        clusterName: v.natsClusterName,
        clientCidrs: v.natsClientCidrs,
        kvReplicas: v.natsKvReplicas,
        clientCa: v.natsClientCaCertPem ? { certPem: v.natsClientCaCertPem, keyPem: v.natsClientCaKeyPem } : undefined,
        dnsDomain: v.natsDnsDomain,
        kvBucket: v.natsKvBucket,
        rejoinTimeoutSeconds: v.natsRejoinTimeoutSeconds,
        serverRelease: {
            version: v.natsServerVersion,
            urlTemplate: v.natsServerDownloadUrl,
            sha256: { amd64: v.natsServerSha256Amd64, arm64: v.natsServerSha256Arm64 },
        },
    };
}
