/**
 * Typed stack configuration. Every `meshstack:*` key is declared once in
 * CONFIG_KEYS (type, default, what is allowed); parseStackConfig turns the raw
 * string values Pulumi hands over into a StackConfig or into the complete
 * list of problems, so an operator fixes a stack file in one pass instead of
 * one `pulumi up` per mistake.
 */
import { NATS_SERVER_RELEASE, NatsServerRelease } from "./natsRelease";

import { environmentOf, environmentProblems, stackNameProblem } from "./environments";
import { cidrNetwork, ipv4Network, ipv4ToInt, isCidr, isIpv4Cidr } from "./ip";
import LINODE_CATALOG from "./linodeCatalog.json";
import { containsPrivateKey, fingerprint, redactPrivateKeys } from "./secretText";
import { looksClamped } from "./wgKey";
import {
    JETSTREAM_MAX_REPLICAS,
    LINODE_METADATA_HARD_LIMIT_BYTES,
    LINODE_METADATA_SAFE_LIMIT_BYTES,
    MAX_NATS_NODES,
    METADATA_LIMIT_MIN_BYTES,
    PUBLISH_TIMEOUT_MAX_SECONDS,
    PUBLISH_TIMEOUT_MIN_SECONDS,
    SIGV4_MAX_EXPIRY_SECONDS,
    WG_LISTEN_PORT_MAX,
    WG_LISTEN_PORT_MIN,
} from "./limits";
import { natsWgAddressPlan, wgSubnet } from "./topology";
import { OPERATOR_PEER_FORMAT, OperatorPeer, parseOperatorPeers } from "./meshPeers";
import { MAX_NATS_REJOIN_TIMEOUT_SECONDS, MIN_NATS_REJOIN_TIMEOUT_SECONDS, NATS_NODE_IMAGE_FORMAT, parseNatsNodeImages } from "./natsRollout";
import { GUEST_SPEC_ALLOWED, guestListProblem, GuestSpec, parseGuestList } from "./proxmoxGuests";

export const CONFIG_NAMESPACE = "meshstack";

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

/** What is probably wrong but may be right; reported, never refused. */
export interface ConfigWarning {
    key: string;
    message: string;
}

export type Result<T> = { ok: true; value: T; warnings: ConfigWarning[] } | { ok: false; errors: ConfigError[]; warnings: ConfigWarning[] };

type Check = (value: ConfigValue) => string | undefined;

interface KeySpec {
    type: "string" | "integer" | "boolean" | "array";
    description: string;
    /** Human description of the allowed values, used in every error for this key. */
    allowed: string;
    default?: ConfigValue;
    /**
     * The key may stay unset. Pulumi.yaml declares it with `default: ""`
     * (the CLI requires every key declared without a default), so an empty
     * string means unset for these keys and only for these.
     */
    optional?: true;
    /** The value must be supplied with `pulumi config set --secret`. */
    secret?: boolean;
    /** What the offline plan uses for this key, since it never decrypts secrets. */
    offlineStandIn?: string;
    check?: Check;
    /**
     * For lists: what makes two items the same entry (a CIDR's network, an
     * SSH key's type and body without its comment); the item itself if unset.
     */
    itemIdentity?: (item: string) => string;
}

const LINODE_REGION = /^[a-z]{2}-[a-z]+(-[0-9])?$/;
const LINODE_TYPE = /^g[0-9]+-[a-z0-9-]+$/;
const LINODE_IMAGE = /^(linode|private)\/[A-Za-z0-9._-]+$/;
const isLinodeImage = (value: string) => LINODE_IMAGE.test(value);
const SSH_KEY_TYPES = ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"];

/**
 * Why a line is not an OpenSSH public key, or undefined. The base64 body is
 * a sequence of length-prefixed fields (RFC 4253 6.6) whose first field
 * repeats the key type; a truncated or pasted-wrong key fails here instead
 * of leaving root without a working key on a node that cannot be changed in place.
 */
export function sshPublicKeyProblem(line: string): string | undefined {
    const [type, body, ...rest] = line.trim().split(/\s+/);
    void rest;
    if (!SSH_KEY_TYPES.includes(type)) return `does not start with a key type (${SSH_KEY_TYPES.join(", ")})`;
    if (!body || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return "has no base64 key body after the type";
    const blob = Buffer.from(body, "base64");
    const fields: Buffer[] = [];
    for (let offset = 0; offset < blob.length; ) {
        if (offset + 4 > blob.length) return "has a truncated key body";
        const length = blob.readUInt32BE(offset);
        if (offset + 4 + length > blob.length) return "has a truncated key body";
        fields.push(blob.subarray(offset + 4, offset + 4 + length));
        offset += 4 + length;
    }
    if (fields.length < 2 || fields[0].toString("latin1") !== type) return `has a key body that is not a ${type} key`;
    if (type === "ssh-ed25519" && (fields.length !== 2 || fields[1].length !== 32)) return "has an ssh-ed25519 body whose key is not 32 bytes";
    return undefined;
}

const EXPOSED = "and replace that key: it is now in a stack file that is not encrypted";
const sshPublicKey: Check = (v) => {
    if (typeof v !== "string") return "is not a string";
    if (containsPrivateKey(v)) return `is a private key, not a public key: give the public key's line instead (ssh-keygen -y -f <key file> prints it), ${EXPOSED}`;
    return sshPublicKeyProblem(v);
};
/** Two lines naming the same key with different comments are one key. */
const sshKeyIdentity = (item: string) => item.trim().split(/\s+/).slice(0, 2).join(" ");

/** A PEM certificate (or several); a private key here is named by fingerprint, never echoed. */
function certificatePem(what: string, keyHome: string, firstLine: RegExp): Check {
    return (v) => {
        if (typeof v !== "string") return "is not a string";
        if (containsPrivateKey(v)) return `is a private key, not ${what}: ${keyHome}, ${EXPOSED}`;
        return firstLine.test(v) ? undefined : `is not ${what} (no -----BEGIN CERTIFICATE----- line)`;
    };
}

function matches(pattern: RegExp): Check {
    return (v) => (typeof v === "string" && pattern.test(v) ? undefined : "does not match");
}

function intRange(min: number, max: number): Check {
    return (v) => (typeof v === "number" && v >= min && v <= max ? undefined : "out of range");
}

function oneOf(...values: string[]): Check {
    return (v) => (typeof v === "string" && values.includes(v) ? undefined : "not one of the allowed values");
}

/** Every bad item, not only the first, so one run of the check names all of them; private keys shown by fingerprint. */
function each(check: Check): Check {
    return (v) => {
        if (!Array.isArray(v)) return "not a list";
        const bad = v.map((item, i) => [i, check(item)] as const).filter(([, problem]) => problem);
        return bad.length ? bad.map(([i, problem]) => `item ${i} (${redactPrivateKeys(JSON.stringify(v[i]))}) ${problem}`).join("; ") : undefined;
    };
}

/** Lists whose entries a cross-key rule reads (operator peers, per-node images): only their shape is checked alone. */
const stringList: Check = (v) => (Array.isArray(v) && v.every((e) => typeof e === "string") ? undefined : "is not a list of strings");
/**
 * A firewall source: a CIDR written as its network. With host bits set
 * (`10.0.0.1/8`) the firewall opens the whole network, which is almost never
 * what was meant; the message offers both readings.
 */
const cidr: Check = (v) => {
    if (typeof v !== "string" || !isCidr(v)) return "is not a CIDR";
    const { network, hostBitsSet } = cidrNetwork(v);
    if (!hostBitsSet) return undefined;
    const [address] = v.split("/");
    const single = address.includes(":") ? 128 : 32;
    return `has host bits set, so the firewall would open all of ${network}; write ${network} for the whole network or ${address}/${single} for the one address`;
};
const cidrIdentity = (item: string) => (isCidr(item) ? cidrNetwork(item).network : item);
/** An address a host can take: not its subnet's network or broadcast address (/31 and /32 have neither). */
const interfaceAddress: Check = (v) => {
    if (typeof v !== "string" || !isIpv4Cidr(v)) return "is not an IPv4 address with prefix";
    const { base, size, prefix } = ipv4Network(v);
    const host = ipv4ToInt(v.split("/")[0]) - base;
    if (prefix <= 30 && host === 0) return "is the network address of its subnet, not an interface address";
    if (prefix <= 30 && host === size - 1) return "is the broadcast address of its subnet, not an interface address";
    return undefined;
};
const PVE_TOKEN_ID = /^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+![A-Za-z][A-Za-z0-9._-]*$/;
const PVE_STORAGE_ID = /^[A-Za-z][A-Za-z0-9._-]*$/;
/**
 * An endpoint URL with no path. Checked as the URL parser will read it, so
 * a port past 65535 is named here instead of crashing later as `Invalid URL`.
 */
function endpointUrl(schemes: string[]): Check {
    return (v) => {
        if (typeof v !== "string") return "is not a string";
        const match = /^([a-z]+):\/\/([^/\s?#]+)\/?$/.exec(v);
        if (!match || !schemes.includes(match[1])) return `is not a ${schemes.join(" or ")} URL with a host and no path`;
        const port = /^(?:\[[^\]]*\]|[^:]*):([0-9]*)$/.exec(match[2])?.[1];
        if (port !== undefined && (port === "" || Number(port) < 1 || Number(port) > 65535)) return `has port ${JSON.stringify(port)}, not a port from 1 to 65535`;
        try {
            new URL(v);
        } catch {
            return "is not a URL (its host cannot be read)";
        }
        return undefined;
    };
}
const httpsUrl = endpointUrl(["http", "https"]);

/** Every stack key, its type, default and rule. Pulumi.yaml declares the same keys (a test keeps them equal). */
export const CONFIG_KEYS: Record<string, KeySpec> = {
    region: {
        type: "string", default: "us-east", check: matches(LINODE_REGION),
        description: "Linode region for every instance.",
        allowed: "a Linode region id such as us-east or de-fra-2, in lib/linodeCatalog.json or meshstack:linodeCatalogExtraIds",
    },
    linodeCatalogExtraIds: {
        type: "array", default: [], check: each(matches(new RegExp(`${LINODE_REGION.source}|${LINODE_TYPE.source}`))),
        description: "Linode region and instance type ids newer than the committed catalog (lib/linodeCatalog.json, dated), accepted as they are until the catalog is refreshed.",
        allowed: "a list of Linode region ids (such as no-osl-1) or instance type ids (such as g8-dedicated-4-2)",
    },
    sshAuthorizedKeys: {
        type: "array", default: [], check: each(sshPublicKey), itemIdentity: sshKeyIdentity,
        description: "SSH public keys installed for root on every instance (break-glass access).",
        allowed: "a list of OpenSSH public keys (ssh-ed25519, ssh-rsa, ecdsa-sha2-*)",
    },
    breakGlassSshCidrs: {
        type: "array", default: [], check: each(cidr), itemIdentity: cidrIdentity,
        description: "Source CIDRs allowed to reach tcp/22 on every instance. Empty keeps tcp/22 closed.",
        allowed: "a list of distinct IPv4/IPv6 CIDRs written as networks (no host bits), such as 203.0.113.7/32",
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
        type: "string", optional: true, check: httpsUrl,
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
        description: "Linode type of the WireGuard cache/gateway node.",
        allowed: "a Linode type id such as g6-nanode-1, in lib/linodeCatalog.json or meshstack:linodeCatalogExtraIds",
    },
    wgCacheImage: {
        type: "string", default: "linode/debian12", check: matches(LINODE_IMAGE),
        description: "Image of the WireGuard cache/gateway node.", allowed: "a Linode image id such as linode/debian12",
    },
    wgListenPort: {
        type: "integer", default: 51820, check: intRange(WG_LISTEN_PORT_MIN, WG_LISTEN_PORT_MAX),
        description: "UDP port WireGuard listens on.", allowed: `an integer from ${WG_LISTEN_PORT_MIN} to ${WG_LISTEN_PORT_MAX}`,
    },
    wgCacheAddress: {
        type: "string", default: "10.44.0.1/24", check: interfaceAddress,
        description: "The cache node's wg0 address; the NATS nodes take addresses from the same subnet.",
        allowed: "an IPv4 interface address with prefix, such as 10.44.0.1/24",
    },
    wgOperatorPeers: {
        type: "array", default: [], check: stringList,
        description: "WireGuard peers of operators (and other outside machines) the hub accepts; they reach the NATS nodes through it. Adding or removing one replaces nothing.",
        allowed: `a list of ${OPERATOR_PEER_FORMAT}, each address in the mesh subnet outside the hub's and the NATS range`,
    },
    wgPubkeyPollTimeoutSeconds: {
        type: "integer", default: 480, check: intRange(PUBLISH_TIMEOUT_MIN_SECONDS, PUBLISH_TIMEOUT_MAX_SECONDS),
        description: "How long `pulumi up` waits for a new node to publish its WireGuard public key; a node's bootstrap object is deleted when it publishes, or after this long.",
        allowed: `an integer from ${PUBLISH_TIMEOUT_MIN_SECONDS} to ${PUBLISH_TIMEOUT_MAX_SECONDS}`,
    },
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
    natsKvBucket: {
        type: "string", optional: true, check: matches(/^[A-Za-z0-9_-]{1,64}$/),
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
    // Proxmox VE golden-image guests: all off while proxmoxGuests is empty.
    proxmoxEndpoint: {
        type: "string", default: "", optional: true, check: endpointUrl(["https"]),
        description: "Proxmox VE API endpoint for the golden-image guests; unset: no Proxmox part.",
        allowed: "an https URL with no path and a port from 1 to 65535, such as https://pve.example.net:8006",
    },
    proxmoxNode: {
        type: "string", default: "", optional: true, check: matches(/^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/),
        description: "Proxmox VE node the guests run on.", allowed: "a node name such as pve",
    },
    proxmoxTokenId: {
        type: "string", default: "", optional: true, check: matches(PVE_TOKEN_ID),
        description: "Proxmox VE API token the guests are managed with (needs VM.Allocate, VM.Audit, VM.Config.*, VM.PowerMgmt, Datastore.Audit, Datastore.AllocateSpace).",
        allowed: "USER@REALM!TOKENID, such as meshstack@pve!deploy",
    },
    proxmoxTokenSecret: {
        type: "string", default: "", optional: true, secret: true, check: matches(/^[A-Za-z0-9-]{8,}$/),
        offlineStandIn: "00000000-0000-4000-8000-000000000000",
        description: "Secret of proxmoxTokenId.", allowed: "the token's secret (a UUID) set with --secret",
    },
    proxmoxStorage: {
        type: "string", default: "", optional: true, check: matches(PVE_STORAGE_ID),
        description: "Storage for the guests' rootfs and mount points.", allowed: "a storage id such as local-lvm",
    },
    proxmoxArchive: {
        type: "string", default: "", optional: true, check: matches(/^[A-Za-z][A-Za-z0-9._-]*:[^\s]+$/),
        description: "Golden archive the guests are restored from; unset: built by the stack from proxmoxGoldenTemplate.",
        allowed: "a backup volume id such as local:backup/vzdump-lxc-9000-2026_06_09-20_41_10.tar.zst",
    },
    proxmoxAllowUnpreparedArchive: {
        type: "boolean", default: false,
        description: "Restore proxmoxArchive even though it lacks the prepared marker (you cleaned SSH host keys and machine-id yourself).",
        allowed: "true or false",
    },
    proxmoxCaBundlePem: {
        type: "string", default: "", optional: true,
        check: certificatePem("a CA certificate bundle", "the endpoint needs only the CA's certificates", /-----BEGIN CERTIFICATE-----/),
        description: "CA certificates that sign the Proxmox VE endpoint's certificate; unset: the system CAs.",
        allowed: "PEM certificates",
    },
    proxmoxTlsFingerprint: {
        type: "string", default: "", optional: true, check: matches(/^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/),
        description: "SHA-256 fingerprint the endpoint's certificate must have, instead of a CA check (the node's self-signed certificate).",
        allowed: "32 colon-separated hex pairs, as `pvenode cert info` prints them",
    },
    proxmoxGuests: {
        type: "array", default: [], check: guestListProblem,
        description: "Golden-image guests to restore; empty: no Proxmox part.",
        allowed: GUEST_SPEC_ALLOWED,
    },
    proxmoxGoldenTemplate: {
        type: "string", default: "", optional: true, check: matches(/^[A-Za-z][A-Za-z0-9._-]*:vztmpl\/[^\s]+$/),
        description: "Container template the stack builds the golden archive from (over SSH as root on the node), instead of proxmoxArchive.",
        allowed: "a template volume id such as local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    },
    proxmoxGoldenVmid: {
        type: "integer", default: 9000, check: intRange(100, 999_999_999),
        description: "VMID of the throwaway container the golden archive is built in.", allowed: "an integer from 100 to 999999999",
    },
    proxmoxGoldenPackages: {
        type: "array", default: [], check: each(matches(/^[a-z0-9][a-z0-9+.-]+$/)),
        description: "Debian packages baked into the golden besides openssh-server and ca-certificates.",
        allowed: "a list of Debian package names such as docker.io",
    },
    proxmoxBackupStorage: {
        type: "string", default: "local", check: matches(PVE_STORAGE_ID),
        description: "Storage the golden archive is written to (content type backup).", allowed: "a storage id such as local",
    },
    proxmoxBridge: {
        type: "string", default: "vmbr0", check: matches(/^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$/),
        description: "Bridge of the golden build container's network (it installs packages).", allowed: "a bridge name such as vmbr0",
    },
    proxmoxSshHost: {
        type: "string", default: "", optional: true, check: matches(/^[A-Za-z0-9.:-]+$/),
        description: "Host the golden is built on over SSH as root; unset: the host of proxmoxEndpoint.",
        allowed: "a hostname or IP address",
    },
    proxmoxSshPrivateKey: {
        type: "string", default: "", optional: true, secret: true, check: matches(/^-----BEGIN ([A-Z]+ )?PRIVATE KEY-----/),
        offlineStandIn: pemBlock("OPENSSH PRIVATE KEY", "offline plan stand-in"),
        description: "SSH private key for root on the Proxmox VE node; needed with proxmoxGoldenTemplate.",
        allowed: "a PEM/OpenSSH private key set with --secret",
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
    /** Parsed and checked meshstack:wgOperatorPeers. */
    operatorPeers: OperatorPeer[];
    pubkeyPollTimeoutSeconds: number;
}

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

/** The Proxmox VE part; present only when guests are configured. */
export interface ProxmoxConfig {
    endpoint: string;
    node: string;
    tokenId: string;
    /** Plain text here; components make it a secret output. */
    tokenSecret: string;
    storage: string;
    tls: { caBundlePem?: string; fingerprint?: string };
    guests: GuestSpec[];
    /** Exactly one of archive and golden. */
    archive?: string;
    allowUnpreparedArchive: boolean;
    golden?: {
        template: string;
        vmid: number;
        packages: string[];
        backupStorage: string;
        bridge: string;
        sshHost: string;
        sshPrivateKey: string;
    };
}

export interface StackConfig {
    region: string;
    access: AccessConfig;
    objectStore: ObjectStoreConfig;
    bootstrap: BootstrapConfig;
    wgCache: WgCacheConfig;
    nats: NatsConfig;
    proxmox?: ProxmoxConfig;
}

export interface RawConfig {
    /** Fully qualified key -> the string Pulumi stores (arrays as JSON). */
    values: Record<string, string>;
    /** Fully qualified keys that were set with --secret. */
    secretKeys: ReadonlySet<string>;
}

/**
 * Template markers: <...>, CHANGEME in any case, and TODO/FIXME written as
 * markers are (upper case), so a value such as "todo-app" is not one.
 */
const PLACEHOLDERS = [/<[^<>]*>/, /change_?me/i, /\b(TODO|FIXME)\b/];

export function qualify(key: string): string {
    return `${CONFIG_NAMESPACE}:${key}`;
}

export function isPlaceholder(raw: string): boolean {
    return PLACEHOLDERS.some((pattern) => pattern.test(raw));
}

function shown(spec: KeySpec, raw: string): string {
    return spec.secret ? "[secret]" : redactPrivateKeys(raw);
}

/** A raw value as messages may show it: a secret key's never, a private key by fingerprint. */
export function shownValue(fullKey: string, raw: string): string {
    const spec = fullKey.startsWith(`${CONFIG_NAMESPACE}:`) ? CONFIG_KEYS[fullKey.slice(CONFIG_NAMESPACE.length + 1)] : undefined;
    return spec ? shown(spec, raw) : redactPrivateKeys(raw);
}

/** Items that name the same entry as an earlier one (by the key's identity), each named with the item it repeats. */
function duplicatesProblem(spec: KeySpec, items: string[]): string | undefined {
    const identity = spec.itemIdentity ?? ((item: string) => item);
    const first = new Map<string, number>();
    const repeats: string[] = [];
    items.forEach((item, i) => {
        const id = identity(item);
        const earlier = first.get(id);
        if (earlier === undefined) first.set(id, i);
        else repeats.push(`item ${i} (${redactPrivateKeys(JSON.stringify(item))}) repeats item ${earlier}${item === items[earlier] ? "" : ` (${redactPrivateKeys(JSON.stringify(items[earlier]))})`}`);
    });
    return repeats.length ? `${repeats.join("; ")}; each entry may appear once` : undefined;
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

function editDistance(a: string, b: string): number {
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
}

function closestKey(unknown: string): string | undefined {
    const [best] = Object.keys(CONFIG_KEYS)
        .map((k) => [k, editDistance(unknown, k)] as const)
        .sort((a, b) => a[1] - b[1]);
    return best && best[1] <= 3 ? best[0] : undefined;
}

/** A namespace this close to ours is a typo: its keys would otherwise be ignored without a word. */
const NAMESPACE_TYPO_DISTANCE = 2;

/**
 * Keys meshstack no longer reads, with what replaced them: a stack file that
 * still sets one is told what to do instead of "unknown key".
 */
const RETIRED_KEYS: Record<string, string> = {
    bootstrapCleanupDelaySeconds:
        "was removed: a node's bootstrap object is now deleted as soon as the node publishes (it has fetched its config then), " +
        "or after meshstack:wgPubkeyPollTimeoutSeconds; delete this line",
};

/** Per-key parsing: type, placeholder, rule and secrecy, plus unknown keys. */
function parseKeys(raw: RawConfig): { values: Record<string, ConfigValue>; errors: ConfigError[] } {
    const errors: ConfigError[] = [];
    const values: Record<string, ConfigValue> = {};
    const prefix = `${CONFIG_NAMESPACE}:`;
    for (const fullKey of Object.keys(raw.values)) {
        const [namespace, name = ""] = fullKey.split(":");
        if (namespace !== CONFIG_NAMESPACE && editDistance(namespace, CONFIG_NAMESPACE) <= NAMESPACE_TYPO_DISTANCE) {
            const hint = closestKey(name);
            errors.push({
                key: fullKey,
                value: raw.secretKeys.has(fullKey) ? "[secret]" : redactPrivateKeys(raw.values[fullKey]),
                message: `unknown namespace ${JSON.stringify(namespace)}; did you mean ${qualify(hint ?? name)}? allowed: meshstack:<key> for a key Pulumi.yaml declares`,
            });
            continue;
        }
        if (!fullKey.startsWith(prefix)) continue;
        const key = fullKey.slice(prefix.length);
        if (key in RETIRED_KEYS) {
            errors.push({ key: fullKey, message: RETIRED_KEYS[key] });
        } else if (!(key in CONFIG_KEYS)) {
            const hint = closestKey(key);
            errors.push({
                key: fullKey,
                // A misspelt secret key (proxmoxTokenSecrte) most likely holds that secret, in clear.
                value: raw.secretKeys.has(fullKey) || (hint && CONFIG_KEYS[hint].secret) ? "[secret]" : redactPrivateKeys(raw.values[fullKey]),
                message: `unknown key${hint ? `; did you mean ${qualify(hint)}?` : ""}; allowed: a key Pulumi.yaml declares (see it for every key)`,
            });
        }
    }
    for (const [key, spec] of Object.entries(CONFIG_KEYS)) {
        const fullKey = qualify(key);
        const rawValue = raw.values[fullKey];
        if (rawValue === undefined || (spec.optional && rawValue === "")) {
            if (spec.default !== undefined && !(spec.optional && spec.default === "")) values[key] = spec.default;
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
        // A list's repeats and its bad items are reported together: one pass fixes both.
        const problems = [Array.isArray(value) ? duplicatesProblem(spec, value) : undefined, spec.check?.(value)].filter((p): p is string => !!p);
        if (problems.length) {
            fail(problems.join("; "));
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

/**
 * What the deploy does over the NATS client port (the KV provider, the
 * rejoin wait) dials it from the deploying machine; with no client CIDRs the
 * firewall never lets it in. `off` is the value that turns the key off.
 */
function needsClientPort(key: string, off: string): (v: Record<string, ConfigValue>) => ConfigError | undefined {
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

/** With guests configured, what reaching Proxmox VE and finding the archive needs; every gap reported. */
function proxmoxRules(v: Record<string, ConfigValue>): ConfigError[] {
    const guests = v.proxmoxGuests as string[] | undefined;
    if (!guests?.length) return [];
    const errors: ConfigError[] = [];
    for (const key of ["proxmoxEndpoint", "proxmoxNode", "proxmoxTokenId", "proxmoxTokenSecret", "proxmoxStorage"]) {
        if (v[key] === undefined) errors.push({ key: qualify(key), message: `is required when proxmoxGuests is set; allowed: ${CONFIG_KEYS[key].allowed}` });
    }
    const hasArchive = v.proxmoxArchive !== undefined;
    const hasTemplate = v.proxmoxGoldenTemplate !== undefined;
    if (hasArchive === hasTemplate) {
        errors.push({
            key: qualify(hasArchive ? "proxmoxGoldenTemplate" : "proxmoxArchive"),
            ...(hasArchive ? { value: String(v.proxmoxGoldenTemplate) } : {}),
            message: hasArchive
                ? "must not be set together with proxmoxArchive; allowed: one of proxmoxArchive (an existing golden) or proxmoxGoldenTemplate (the stack builds it)"
                : "is required when proxmoxGuests is set (or proxmoxGoldenTemplate); allowed: " + CONFIG_KEYS.proxmoxArchive.allowed,
        });
    }
    if (hasTemplate && v.proxmoxSshPrivateKey === undefined) {
        errors.push({ key: qualify("proxmoxSshPrivateKey"), message: "is required when proxmoxGoldenTemplate is set (the golden is built over SSH as root); allowed: " + CONFIG_KEYS.proxmoxSshPrivateKey.allowed });
    }
    if (v.proxmoxCaBundlePem !== undefined && v.proxmoxTlsFingerprint !== undefined) {
        errors.push({ key: qualify("proxmoxTlsFingerprint"), value: String(v.proxmoxTlsFingerprint), message: "must not be set together with proxmoxCaBundlePem; allowed: one of the two, or neither for the system CAs" });
    }
    // The golden build destroys and recreates its container on every rebuild: a guest on that VMID would go with it.
    const goldenVmid = v.proxmoxGoldenVmid;
    if (hasTemplate && typeof goldenVmid === "number") {
        parseGuestList(guests).forEach((guest, i) => {
            if (guest.vmid !== goldenVmid) return;
            errors.push({
                key: qualify("proxmoxGuests"), value: guests[i],
                message: `item ${i}: guest ${guest.hostname} has vmid ${goldenVmid}, the VMID of the golden build container (meshstack:proxmoxGoldenVmid): the next golden rebuild destroys it; allowed: a vmid other than ${goldenVmid}, or another proxmoxGoldenVmid`,
            });
        });
    }
    return errors;
}

/**
 * A node publishes its WireGuard key through a presigned PUT URL that lives
 * bootstrapUrlExpirySeconds; `pulumi up` waits wgPubkeyPollTimeoutSeconds
 * for it. A URL that dies first turns a slow boot into a failed wait.
 */
function urlLifetimeRule(v: Record<string, ConfigValue>): ConfigError | undefined {
    const lifetime = v.bootstrapUrlExpirySeconds;
    const poll = v.wgPubkeyPollTimeoutSeconds;
    if (typeof lifetime !== "number" || typeof poll !== "number" || lifetime >= poll) return undefined;
    return {
        key: qualify("bootstrapUrlExpirySeconds"), value: String(lifetime),
        message: `is shorter than meshstack:wgPubkeyPollTimeoutSeconds (${poll}): a node that boots late in that wait finds its presigned publish URL expired and cannot publish its key in time; allowed: an integer from ${poll} to ${SIGV4_MAX_EXPIRY_SECONDS}, or a wgPubkeyPollTimeoutSeconds of at most ${lifetime}`,
    };
}

const CATALOG_REGIONS: readonly string[] = LINODE_CATALOG.regions;
const CATALOG_TYPES: readonly string[] = LINODE_CATALOG.instanceTypes;
const CATALOG_NAME = `the Linode catalog of ${LINODE_CATALOG.asOf} (lib/linodeCatalog.json)`;

/** What to offer instead of an unknown id: a type's family members, else the nearest ids by edit distance. */
function catalogHint(value: string, ids: readonly string[], kind: "region" | "instance type"): string {
    const distances = ids.map((id) => [id, editDistance(value, id)] as const);
    const best = Math.min(...distances.map(([, d]) => d));
    const nearest = best <= 2 ? distances.filter(([, d]) => d === best).map(([id]) => id) : [];
    const guess = nearest.length && nearest.length <= 3 ? `did you mean ${nearest.join(" or ")}? ` : "";
    if (kind === "region") return `${guess}allowed: one of ${ids.join(", ")}`;
    const family = value.replace(/-[^-]*$/, "");
    const members = ids.filter((id) => id.startsWith(`${family}-`) && !id.slice(family.length + 1).includes("-"));
    return `${guess}allowed: ${members.length ? `in that family ${members.join(", ")}` : `one of the ${ids.length} types it lists, such as ${ids.slice(0, 4).join(", ")}`}`;
}

/**
 * Regions and instance types are checked against a committed, dated
 * catalog: a typo (us-eest) fails here, not at the Linode API halfway
 * through an `up`. A newer id is accepted when linodeCatalogExtraIds lists it.
 */
function catalogRules(v: Record<string, ConfigValue>): ConfigError[] {
    const extras = new Set((v.linodeCatalogExtraIds as string[] | undefined) ?? []);
    const keys: [string, readonly string[], "region" | "instance type"][] = [
        ["region", CATALOG_REGIONS, "region"],
        // An s3-kind store's region is the S3 service's, not Linode's.
        ...(v.objectStoreKind === "linode" ? [["objectStoreRegion", CATALOG_REGIONS, "region"] as [string, readonly string[], "region"]] : []),
        ["wgCacheInstanceType", CATALOG_TYPES, "instance type"],
        ["natsInstanceType", CATALOG_TYPES, "instance type"],
    ];
    const errors: ConfigError[] = [];
    for (const [key, ids, kind] of keys) {
        const value = v[key];
        if (typeof value !== "string" || ids.includes(value) || extras.has(value)) continue;
        errors.push({
            key: qualify(key), value,
            message: `is not a Linode ${kind} in ${CATALOG_NAME}; ${catalogHint(value, ids, kind)}; or, for ${kind === "region" ? "a region" : "an instance type"} newer than the catalog, list ${value} in meshstack:linodeCatalogExtraIds`,
        });
    }
    return errors;
}

function catalogWarnings(v: Record<string, ConfigValue>): ConfigWarning[] {
    const extras = (v.linodeCatalogExtraIds as string[] | undefined) ?? [];
    return extras.filter((id) => CATALOG_REGIONS.includes(id) || CATALOG_TYPES.includes(id)).map((id) => ({
        key: qualify("linodeCatalogExtraIds"),
        message: `${id} is in ${CATALOG_NAME} now; the entry can go`,
    }));
}

/**
 * `wg genkey` output pasted where `wg pubkey` output belongs is published in
 * clear in the hub's desired state. Shape alone cannot prove it (1 public
 * key in 32 looks the same), so this warns, naming the peer and a fingerprint.
 */
function operatorKeyWarnings(v: Record<string, ConfigValue>): ConfigWarning[] {
    const entries = v.wgOperatorPeers as string[] | undefined;
    const address = v.wgCacheAddress as string | undefined;
    if (entries === undefined || address === undefined) return [];
    const parsed = parseOperatorPeers(entries, wgSubnet(address), address.split("/")[0]);
    if (!parsed.ok) return [];
    return parsed.value.filter((peer) => looksClamped(peer.publicKey)).map((peer) => ({
        key: qualify("wgOperatorPeers"),
        message: `peer ${peer.name}: the key (${fingerprint(peer.publicKey)}) has the shape of a WireGuard private key (clamped, as wg genkey makes them; 1 public key in 32 looks the same by chance). If it came from wg genkey, give \`wg pubkey < key\` output instead and make a new key pair: a private key here is published in clear`,
    }));
}

function wgAddressPlanRule(v: Record<string, ConfigValue>): ConfigError | undefined {
    const address = v.wgCacheAddress as string | undefined;
    const nodes = v.natsNodeCount as number | undefined;
    if (address === undefined || nodes === undefined) return undefined;
    const plan = natsWgAddressPlan(address, nodes);
    return plan.ok ? undefined : { key: qualify("wgCacheAddress"), value: address, message: plan.error };
}

function natsNodeImagesRule(v: Record<string, ConfigValue>): ConfigError | undefined {
    const entries = v.natsNodeImages as string[] | undefined;
    const nodes = v.natsNodeCount as number | undefined;
    if (entries === undefined || nodes === undefined) return undefined;
    const parsed = parseNatsNodeImages(entries, nodes, isLinodeImage);
    return parsed.ok ? undefined : { key: qualify("natsNodeImages"), value: JSON.stringify(entries), message: `${parsed.error}; allowed: ${CONFIG_KEYS.natsNodeImages.allowed}` };
}

function operatorPeersRule(v: Record<string, ConfigValue>): ConfigError | undefined {
    const address = v.wgCacheAddress as string | undefined;
    const entries = v.wgOperatorPeers as string[] | undefined;
    if (address === undefined || entries === undefined) return undefined;
    const parsed = parseOperatorPeers(entries, wgSubnet(address), address.split("/")[0]);
    return parsed.ok ? undefined : { key: qualify("wgOperatorPeers"), value: JSON.stringify(entries), message: `${parsed.error}; allowed: ${CONFIG_KEYS.wgOperatorPeers.allowed}` };
}

/** The per-node images of a config that passed natsNodeImagesRule. */
function nodeImagesOf(entries: string[], nodeCount: number): Record<number, string> {
    const parsed = parseNatsNodeImages(entries, nodeCount, isLinodeImage);
    if (!parsed.ok) throw new Error(`${parsed.error} (natsNodeImagesRule should have refused this)`);
    return parsed.value;
}

/** The operator peers of a config that passed operatorPeersRule. */
function operatorPeersOf(entries: string[], address: string): OperatorPeer[] {
    const parsed = parseOperatorPeers(entries, wgSubnet(address), address.split("/")[0]);
    if (!parsed.ok) throw new Error(`${parsed.error} (operatorPeersRule should have refused this)`);
    return parsed.value;
}

/** Rules that relate two or more keys; each checked only when its inputs parsed. */
const CROSS_KEY_RULES = [urlLifetimeRule, s3EndpointRule, kvReplicasRule, clientCaPairRule, needsClientPort("natsKvBucket", "unset"), needsClientPort("natsRejoinTimeoutSeconds", "0"), wgAddressPlanRule, operatorPeersRule, natsNodeImagesRule];

/**
 * With the stack name, the stack's environment (lib/environments.ts) adds
 * its own refusals, e.g. prod's; without it only the per-key and cross-key
 * rules apply.
 */
export function parseStackConfig(raw: RawConfig, stack?: string): Result<StackConfig> {
    const { values, errors: found } = parseKeys(raw);
    // A key whose own value was refused is not also named by a rule over two keys (say, "required" after "bad port").
    const refused = new Set(found.map((e) => e.key));
    for (const rule of CROSS_KEY_RULES) {
        const problem = rule(values);
        if (problem && !refused.has(problem.key)) found.push(problem);
    }
    found.push(...catalogRules(values));
    if (stack !== undefined) {
        const nameProblem = stackNameProblem(stack);
        if (nameProblem) found.push(nameProblem);
        for (const problem of environmentProblems(environmentOf(stack), values)) found.push({ ...problem, key: qualify(problem.key) });
    }
    // A key already reported (say, a secret in clear text) is not also "required".
    found.push(...proxmoxRules(values).filter((e) => !found.some((reported) => reported.key === e.key)));
    const warnings = [...catalogWarnings(values), ...operatorKeyWarnings(values)];
    // Last line of defence: whatever rule built a message, a private key in it is shown by fingerprint.
    const errors = found.map((e) => ({ ...e, message: redactPrivateKeys(e.message), ...(e.value !== undefined ? { value: redactPrivateKeys(e.value) } : {}) }));
    if (errors.length) return { ok: false, errors, warnings };
    const v = values as Record<string, never>;
    return {
        ok: true,
        warnings,
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
            },
            wgCache: {
                instanceType: v.wgCacheInstanceType,
                image: v.wgCacheImage,
                listenPort: v.wgListenPort,
                address: v.wgCacheAddress,
                operatorPeers: operatorPeersOf(v.wgOperatorPeers, v.wgCacheAddress),
                pubkeyPollTimeoutSeconds: v.wgPubkeyPollTimeoutSeconds,
            },
            nats: {
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
                    version: NATS_SERVER_RELEASE.version,
                    urlTemplate: v.natsServerDownloadUrl,
                    sha256: { amd64: v.natsServerSha256Amd64, arm64: v.natsServerSha256Arm64 },
                },
            },
            proxmox: proxmoxConfig(values),
        },
    };
}

function proxmoxConfig(values: Record<string, ConfigValue>): ProxmoxConfig | undefined {
    const v = values as Record<string, never>;
    const guests = v.proxmoxGuests as string[];
    if (!guests.length) return undefined;
    const endpointHost = new URL(v.proxmoxEndpoint as string).hostname.replace(/^\[|\]$/g, "");
    return {
        endpoint: v.proxmoxEndpoint,
        node: v.proxmoxNode,
        tokenId: v.proxmoxTokenId,
        tokenSecret: v.proxmoxTokenSecret,
        storage: v.proxmoxStorage,
        tls: { caBundlePem: v.proxmoxCaBundlePem, fingerprint: v.proxmoxTlsFingerprint },
        guests: parseGuestList(guests),
        archive: v.proxmoxArchive,
        allowUnpreparedArchive: v.proxmoxAllowUnpreparedArchive,
        golden: v.proxmoxGoldenTemplate
            ? {
                template: v.proxmoxGoldenTemplate,
                vmid: v.proxmoxGoldenVmid,
                packages: v.proxmoxGoldenPackages,
                backupStorage: v.proxmoxBackupStorage,
                bridge: v.proxmoxBridge,
                sshHost: v.proxmoxSshHost ?? endpointHost,
                sshPrivateKey: v.proxmoxSshPrivateKey,
            }
            : undefined,
    };
}

/** One line per problem, for the CLI and for the error `pulumi up` shows; warnings follow, so none is lost with the refusal. */
export function formatConfigErrors(errors: ConfigError[], warnings: ConfigWarning[] = []): string {
    const lines = errors.map((e) => `  - ${e.key}${e.value !== undefined ? ` = ${JSON.stringify(e.value)}` : ""}: ${e.message}`);
    const report = `invalid stack configuration (${errors.length} problem${errors.length === 1 ? "" : "s"}):\n${lines.join("\n")}`;
    return warnings.length ? `${report}\n${formatConfigWarnings(warnings)}` : report;
}

export function formatConfigWarnings(warnings: ConfigWarning[]): string {
    return `stack configuration warning${warnings.length === 1 ? "" : "s"} (${warnings.length}):\n${warnings.map((w) => `  - ${w.key}: ${w.message}`).join("\n")}`;
}
