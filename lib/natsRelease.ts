/**
 * The nats-server release the nodes run, and where from. 2.10+ for v2
 * routes (pooling) and in-place replica changes of older streams; the tests
 * build the same version from the Go module proxy (scripts/setup.sh).
 *
 * The release reaches a node through its desired state (DesiredState.natsServer),
 * never its user-data: the agent installs it at its first apply and upgrades
 * (or downgrades) in place when it changes, one node per step
 * (providers/natsServerUpgradeWait.ts), reporting the outcome through a
 * presigned PUT its desired state carries.
 *
 * The download URL is a template so a private mirror (air-gapped sites, the
 * box tier) serves the same release under its own address; the checksums
 * are checked before anything is unpacked, whatever the source.
 *
 * Pure: no Pulumi (the upgrade wait's serialized provider captures it).
 */
export interface NatsServerRelease {
    version: string;
    /** `{version}` and `{arch}` (dpkg architecture: amd64, arm64) are filled in for the node. */
    urlTemplate: string;
    sha256: { amd64: string; arm64: string };
}

export const NATS_SERVER_RELEASE: NatsServerRelease = {
    version: "v2.14.7",
    urlTemplate: "https://github.com/nats-io/nats-server/releases/download/{version}/nats-server-{version}-linux-{arch}.tar.gz",
    sha256: {
        amd64: "e5c20b1cb2c0566b54c544312e91e011f9e130c5c80f16a14f4cf28ef30b8be2",
        arm64: "50e0258a1b7290f3fe2e4f17506b74a90ffb1dd77867ae3a402eb0c9e2b0d40f",
    },
};

/** A release tag as nats-server names its releases (and `nats-server --version` prints it). */
export const NATS_SERVER_VERSION_PATTERN = /^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$/;

/** What a NATS node's desired state carries: the release it should run, and where it reports. */
export interface NatsServerOffer {
    version: string;
    /** The download URL with `{version}` filled in; `{arch}` is left for the node (dpkg --print-architecture). */
    url: string;
    sha256: { amd64: string; arm64: string };
    /** Presigned PUT of the node's report (natsServerReportKey). A credential: never logged. */
    reportUrl: string;
}

export function natsServerOffer(release: NatsServerRelease, reportUrl: string): NatsServerOffer {
    return { version: release.version, url: release.urlTemplate.replaceAll("{version}", release.version), sha256: { ...release.sha256 }, reportUrl };
}

/**
 * What the agent PUTs once it has acted on a release: the version it runs
 * and is healthy on, or the version it is back on after a failed attempt,
 * with the release that failed and why.
 */
export interface NatsServerReport {
    version: 1;
    node: string;
    instanceId: string;
    /** The version the node runs now. */
    natsServer: string;
    healthy?: boolean;
    /** The version that failed to install or to come up healthy; the node went back to natsServer. */
    failed?: string;
    reason?: string;
}

/** Where an upgrade to `version` stands, as the node's report says. */
export type NatsServerUpgradeOutcome =
    | { state: "done" }
    | { state: "failed"; runs: string; reason: string }
    | { state: "pending"; why: string };

/**
 * Reads a node's report against the release the wait expects: done when it
 * names that version healthy on this instance, failed when it names that
 * version failed on this instance, pending otherwise (another instance's
 * report, an older release's, a half-written one).
 */
export function natsServerUpgradeOutcome(doc: unknown, expected: { node: string; instanceId: string; version: string }): NatsServerUpgradeOutcome {
    if (typeof doc !== "object" || doc === null) return { state: "pending", why: "a report that is not a JSON object" };
    const d = doc as Partial<NatsServerReport>;
    if (d.node !== expected.node) return { state: "pending", why: `a report from node ${JSON.stringify(d.node)}` };
    if (String(d.instanceId) !== expected.instanceId) return { state: "pending", why: `a report from instance ${JSON.stringify(d.instanceId)}, not ${expected.instanceId}` };
    if (d.failed === expected.version) return { state: "failed", runs: String(d.natsServer), reason: typeof d.reason === "string" ? d.reason : "(no reason given)" };
    if (d.natsServer === expected.version && d.healthy === true) return { state: "done" };
    return { state: "pending", why: `the node reports ${JSON.stringify(d.natsServer)}${d.healthy === true ? " healthy" : ""}${d.failed ? ` (${d.failed} failed)` : ""}` };
}
