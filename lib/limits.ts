/**
 * Limits of the platforms meshstack runs on, each defined once with where it
 * comes from. Config validation, renderers and dynamic providers import them
 * from here, so a value the config accepts is never refused later by a
 * provider with a different bound.
 *
 * Dynamic providers capture this module by value into their serialized
 * text: keep it to plain constants.
 */

/**
 * Linode Metadata user-data. The API reference says both "unencoded data must
 * not exceed 65535 bytes" and "about 16kb encoded"; Cluster API Provider
 * Linode enforces 16384 decoded bytes, so that is the safe default and 65535
 * the ceiling an operator may raise it to.
 */
export const LINODE_METADATA_SAFE_LIMIT_BYTES = 16384;
export const LINODE_METADATA_HARD_LIMIT_BYTES = 65535;
/** Below this even an #include pointer with its presigned URL may not fit. */
export const METADATA_LIMIT_MIN_BYTES = 1024;

/** SigV4 presigned URLs are valid for at most seven days (AWS S3 and every S3-compatible store that follows it). */
export const SIGV4_MAX_EXPIRY_SECONDS = 7 * 24 * 60 * 60;
/** S3 object keys are at most 1024 bytes of UTF-8. */
export const S3_MAX_KEY_BYTES = 1024;

/**
 * How long an `up` waits for a new node to publish its first-boot material
 * (meshstack:wgPubkeyPollTimeoutSeconds): the key poll's timeout, and the
 * deadline after which a node's bootstrap object is deleted unpublished.
 */
export const PUBLISH_TIMEOUT_MIN_SECONDS = 30;
export const PUBLISH_TIMEOUT_MAX_SECONDS = 3600;

/** WireGuard listens on an unprivileged UDP port: below 1024 collides with system services. */
export const WG_LISTEN_PORT_MIN = 1024;
export const WG_LISTEN_PORT_MAX = 65535;

/** JetStream's largest stream replication factor (nats-server refuses more). */
export const JETSTREAM_MAX_REPLICAS = 5;
/** JetStream keeps at most 64 revisions per KV key. */
export const KV_MAX_HISTORY = 64;

/** RAFT needs a majority: odd cluster sizes only, up to seven servers. */
export const MAX_NATS_NODES = 7;
