/**
 * Waits during `pulumi up` until a node has published its public material
 * (lib/runtimeChannel.ts: its WireGuard public key and any certificate
 * requests) and returns it. Only this instance's material counts: the key
 * is per boot generation and the document names the instance, so a
 * predecessor's document (a bare instance replacement keeps the
 * generation) is "not yet", never an answer. A poller that takes every
 * failure for "not yet" waits out its whole timeout on a wrong key; here
 * each outcome is told apart:
 *
 * - 404, or an object that is not this instance's document (partial write,
 *   garbage, a predecessor's): not yet, keep polling.
 * - This instance's document with a certificate request for names other
 *   than the node's profile, or not signed by its own key: refused at once.
 *   The deploy signs what a request asks for, so it must not pass on.
 * - 403 / signature errors: a fresh Linode access key takes ~30 s to become
 *   effective, so they are retried for a short grace period, then reported
 *   as an authorization problem (which waiting longer cannot fix).
 * - 5xx, network errors: transient, keep polling.
 *
 * GETs are signed with the bucket's scoped key (the bucket is private:
 * Linode refuses public-read with NotImplemented). The engine's `cancel` does
 * not reach dynamic providers, so every wait here is bounded by the deadline.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { InputProblem, objectWhere, requiredStringProblems, S3Credentials, S3Location, S3NetworkError, S3Response, s3ObjectAccessProblems, signedObjectRequest } from "./s3";
import { S3ObjectAccessArgs, withSecretCredentials } from "./s3Args";
import { readFromState } from "./stateOnly";
import { changedFields, containsUnknown, knownFailures } from "./unknowns";
import { certificateRequestProblems, RequestedIdentity } from "../lib/certRequest";
import { PublishedMaterial, publishedMaterialProblems } from "../lib/runtimeChannel";
import { formatSeconds } from "../lib/duration";

export interface PollPolicy {
    /** Wait before the first GET. */
    initialDelayMs: number;
    /** Growth of the wait after each attempt. */
    multiplier: number;
    /** Cap of the wait between attempts. */
    maxIntervalMs: number;
    /** Each wait is scaled by a random factor in [1 - jitter, 1 + jitter]. */
    jitter: number;
    /** Overall limit, from the start of the poll. */
    timeoutMs: number;
    /** How long 403 / signature errors in a row are taken for key propagation. */
    authGraceMs: number;
    /** Limit of one GET. */
    requestTimeoutMs: number;
}

/**
 * The node publishes 30-120 s after the poll starts (boot, apt, keygen), so
 * the wait grows quickly to a short cap: a few seconds of detection lag for
 * a handful of extra GETs, which cost next to nothing (see bench/wgPubkeyPoll.ts).
 */
export const DEFAULT_POLL_POLICY: PollPolicy = {
    initialDelayMs: 2_000,
    multiplier: 1.5,
    maxIntervalMs: 6_000,
    jitter: 0.2,
    timeoutMs: 480_000,
    authGraceMs: 45_000,
    requestTimeoutMs: 10_000,
};

/** Whose material counts: this node, this instance, with these certificate requests. */
export interface PublishedExpectation {
    node: string;
    instanceId: string;
    /** By request name, what each request must ask for: the node's certificate profiles. */
    expectedRequests: Record<string, RequestedIdentity>;
}

export interface PollTarget extends S3Location, PublishedExpectation {
    /** Linode label of the publishing node, for messages. */
    nodeLabel: string;
    /** Public address of the node, for the "read its log" hint. */
    nodeAddress: string;
    /** Where the node logs its bootstrap. */
    bootstrapLogPath: string;
}

/** What one attempt saw: an S3 response or a network failure. */
export type PollResponse = S3Response | { networkError: string };

export interface PollDeps {
    now(): number;
    sleep(ms: number): Promise<void>;
    random(): number;
    get(timeoutMs: number): Promise<PollResponse>;
    log(line: string): void;
}

export interface PollResult {
    publicKey: string;
    requests: Record<string, string>;
    attempts: number;
    waitedMs: number;
}


/** The wait before attempt `attempt` (0 = the first GET), jittered. */
export function pollDelayMs(policy: PollPolicy, attempt: number, random: () => number): number {
    const base = Math.min(policy.maxIntervalMs, policy.initialDelayMs * policy.multiplier ** attempt);
    return Math.max(0, Math.round(base * (1 + policy.jitter * (2 * random() - 1))));
}

// An array, not a Set: closure serialization does not reproduce Sets.
const AUTH_ERROR_CODES = [
    "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "AuthorizationHeaderMalformed",
    "RequestTimeTooSkewed", "ExpiredToken", "InvalidToken", "InvalidSecurity",
];

type Verdict = { kind: "found"; material: PublishedMaterial } | { kind: "auth" | "notYet" | "refused"; status: string };

/** Why the deploy may not sign the requests of a document that is this instance's; empty when it may. */
export function publishedRequestProblems(material: PublishedMaterial, expectedRequests: Record<string, RequestedIdentity>): string[] {
    return Object.entries(expectedRequests).flatMap(([name, identity]) =>
        certificateRequestProblems(material.certificateRequests?.[name] ?? "", identity).map((problem) => `certificate request ${JSON.stringify(name)} ${problem}`));
}

/** The error for requests the deploy will not sign: the same words at first poll and when state is checked again. */
function refusedToSign(nodeLabel: string, where: string, problems: string): Error {
    return new Error(
        `refusing to sign for node ${nodeLabel}: its published material at ${where} holds a ${problems}. ` +
            "A node asks for exactly the names of its certificate profile, rendered into its own user-data; anything else " +
            "was written by someone else holding its publish URL, or by a different meshstack version. Nothing was signed. " +
            `Rebuild the node (pulumi up --replace <the node's label resource>) after finding out which.`,
    );
}

function judge(response: PollResponse, expected: PublishedExpectation): Verdict {
    if ("networkError" in response) return { kind: "notYet", status: `network error (${response.networkError})` };
    const status = `HTTP ${response.status}${response.errorCode ? ` ${response.errorCode}` : ""}`;
    if (response.status === 200) {
        let doc: unknown;
        try {
            doc = JSON.parse(response.body.toString("utf8"));
        } catch {
            return { kind: "notYet", status: `${status} but the object's ${response.body.length} bytes are not JSON (a partial write?)` };
        }
        const problems = publishedMaterialProblems(doc, { ...expected, requestNames: Object.keys(expected.expectedRequests) });
        if (problems.length > 0) return { kind: "notYet", status: `${status} but the document ${problems.join("; ")}` };
        const refused = publishedRequestProblems(doc as PublishedMaterial, expected.expectedRequests);
        if (refused.length > 0) return { kind: "refused", status: refused.join("; ") };
        return { kind: "found", material: doc as PublishedMaterial };
    }
    if (response.status === 401 || response.status === 403 || (response.errorCode && AUTH_ERROR_CODES.includes(response.errorCode))) {
        return { kind: "auth", status };
    }
    return { kind: "notYet", status };
}


/** GETs until the object holds a WireGuard public key, the auth grace lapses or the deadline passes. */
export async function pollForPublicKey(target: PollTarget, policy: PollPolicy, deps: PollDeps): Promise<PollResult> {
    const start = deps.now();
    const deadline = start + policy.timeoutMs;
    const where = objectWhere(target);
    let attempts = 0;
    let lastStatus = "no response yet";
    let authFailingSince: number | undefined;
    for (;;) {
        const wait = Math.min(pollDelayMs(policy, attempts, deps.random), Math.max(0, deadline - deps.now()));
        await deps.sleep(wait);
        attempts++;
        const requestTimeout = Math.max(1_000, Math.min(policy.requestTimeoutMs, deadline - deps.now()));
        const verdict = judge(await deps.get(requestTimeout), target);
        const now = deps.now();
        const elapsed = now - start;
        if (verdict.kind === "found") {
            deps.log(`wg-pubkey-poll ${where}: attempt ${attempts} at ${formatSeconds(elapsed)}: found the public material of ${target.nodeLabel}`);
            return { publicKey: verdict.material.wgPublicKey, requests: verdict.material.certificateRequests ?? {}, attempts, waitedMs: elapsed };
        }
        lastStatus = verdict.status;
        if (verdict.kind === "refused") throw refusedToSign(target.nodeLabel, where, lastStatus);
        if (verdict.kind === "auth") {
            authFailingSince ??= now;
            if (now - authFailingSince >= policy.authGraceMs) {
                throw new Error(
                    `authorization problem, not a missing key: GET ${where} was refused with ${lastStatus} ` +
                        `for ${formatSeconds(now - authFailingSince)} (${attempts} attempts), longer than the ${formatSeconds(policy.authGraceMs)} ` +
                        "a new access key needs to become effective. Check that the poll signs with the bucket's scoped key " +
                        "(ObjectStore accessKeyId/secretAccessKey, not revoked, read access to this bucket), the signing region " +
                        "(ObjectStore signingRegion) and the endpoint, and that this machine's clock is right (RequestTimeTooSkewed).",
                );
            }
        } else {
            authFailingSince = undefined;
        }
        const remaining = deadline - now;
        if (remaining <= 0) {
            throw new Error(
                `timed out after ${formatSeconds(elapsed)} waiting for node ${target.nodeLabel} to publish its WireGuard public key ` +
                    `to bucket ${target.bucket}, key ${target.key} (${target.endpoint}): ${attempts} attempts, last response ${lastStatus}. ` +
                    `The node publishes the key at the end of its first boot; read its bootstrap log to see where it stopped: ` +
                    `ssh root@${target.nodeAddress} cat ${target.bootstrapLogPath} (tcp/22 is open only from meshstack:breakGlassSshCidrs), ` +
                    `or run the same command in the Linode LISH console of ${target.nodeLabel}; ` +
                    "cloud-init's own output is in /var/log/cloud-init-output.log.",
            );
        }
        const phase = verdict.kind === "auth" ? "refused, retried while a new key propagates" : "not published yet";
        deps.log(
            `wg-pubkey-poll ${where}: attempt ${attempts} at ${formatSeconds(elapsed)}: ${lastStatus}, ${phase}; ` +
                `giving up in ${formatSeconds(remaining)}`,
        );
    }
}

/** What the provider receives: the args, resolved, with secrets unwrapped by the engine. */
export interface WgPubkeyPollInputs extends PollTarget, S3Credentials {
    policy: PollPolicy;
}

/** State kept: the target and the result, never the credentials. */
export interface WgPubkeyPollOutputs extends PollTarget {
    /** State written before requests were checked has their names only. */
    requestNames?: string[];
    policy: PollPolicy;
    publicKey: string;
    requests: Record<string, string>;
    attempts: number;
    waitedMs: number;
    foundAt: string;
}

export function wgPubkeyPollInputProblems(inputs: Partial<WgPubkeyPollInputs>): InputProblem[] {
    const problems = [
        ...s3ObjectAccessProblems(inputs),
        ...requiredStringProblems(inputs, ["node", "instanceId", "nodeLabel", "bootstrapLogPath"] as const),
    ];
    const requests = inputs.expectedRequests;
    const isStrings = (v: unknown) => Array.isArray(v) && v.every((item) => typeof item === "string");
    const isIdentity = (v: Partial<RequestedIdentity>) =>
        typeof v === "object" && v !== null && typeof v.commonName === "string" && typeof v.organization === "string" && isStrings(v.dnsNames) && isStrings(v.ipAddresses);
    if (typeof requests !== "object" || requests === null || Array.isArray(requests) || !Object.entries(requests).every(([name, v]) => name !== "" && isIdentity(v))) {
        problems.push({
            property: "expectedRequests",
            reason: `got ${JSON.stringify(requests)}; allowed: an object of request name to { commonName, organization, dnsNames, ipAddresses } (empty for none)`,
        });
    }
    const policy = (inputs.policy ?? {}) as Partial<PollPolicy>;
    const rules: [keyof PollPolicy, (v: number) => boolean, string][] = [
        ["initialDelayMs", (v) => v >= 0, "a number of milliseconds >= 0"],
        ["multiplier", (v) => v >= 1, "a number >= 1"],
        ["maxIntervalMs", (v) => v > 0, "a number of milliseconds > 0"],
        ["jitter", (v) => v >= 0 && v < 1, "a number from 0 up to (not including) 1"],
        ["timeoutMs", (v) => v > 0, "a number of milliseconds > 0 (meshstack:wgPubkeyPollTimeoutSeconds)"],
        ["authGraceMs", (v) => v >= 0, "a number of milliseconds >= 0"],
        ["requestTimeoutMs", (v) => v > 0, "a number of milliseconds > 0"],
    ];
    for (const [field, ok, allowed] of rules) {
        const value = policy[field];
        if (typeof value !== "number" || !Number.isFinite(value) || !ok(value)) {
            problems.push({ property: `policy.${field}`, reason: `got ${JSON.stringify(value)}; allowed: ${allowed}` });
        }
    }
    return problems;
}

/** A changed object or instance is a different key: poll again (replace). */
const REPOLL_FIELDS = ["endpoint", "region", "bucket", "key", "instanceId", "node"] as const;
const KEPT_FIELDS = ["nodeLabel", "nodeAddress", "bootstrapLogPath"] as const;

/**
 * Other request names are another document: poll again. Other names within
 * the same requests are checked against the requests already found, in
 * place: polling again would only fetch the same requests, and would turn
 * every certificate signed from them unknown in the preview.
 */
function requestChange(olds: WgPubkeyPollOutputs, news: WgPubkeyPollInputs): "none" | "update" | "replace" {
    if (containsUnknown(news.expectedRequests)) return "replace";
    const oldNames = olds.expectedRequests ? Object.keys(olds.expectedRequests) : (olds.requestNames ?? []);
    if (JSON.stringify([...oldNames].sort()) !== JSON.stringify(Object.keys(news.expectedRequests).sort())) return "replace";
    return JSON.stringify(olds.expectedRequests) === JSON.stringify(news.expectedRequests) ? "none" : "update";
}

export const wgPubkeyPollProvider: pulumi.dynamic.ResourceProvider<WgPubkeyPollInputs, WgPubkeyPollOutputs> = {
    async check(_olds: WgPubkeyPollInputs, news: WgPubkeyPollInputs) {
        return { inputs: news, failures: knownFailures(news, wgPubkeyPollInputProblems(news)) };
    },

    async create(inputs: WgPubkeyPollInputs) {
        const location = { endpoint: inputs.endpoint, region: inputs.region, bucket: inputs.bucket, key: inputs.key };
        const credentials = { accessKeyId: inputs.accessKeyId, secretAccessKey: inputs.secretAccessKey };
        const result = await pollForPublicKey(inputs, inputs.policy, {
            now: () => Date.now(),
            sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
            random: Math.random,
            get: (timeoutMs) =>
                signedObjectRequest(location, credentials, "GET", undefined, timeoutMs).catch((err: Error) => ({
                    networkError: err.name === "S3NetworkError" ? (err as S3NetworkError).reason : err.message,
                })),
            log: (line) => console.log(line),
        });
        const outs: WgPubkeyPollOutputs = {
            endpoint: inputs.endpoint,
            region: inputs.region,
            bucket: inputs.bucket,
            key: inputs.key,
            nodeLabel: inputs.nodeLabel,
            nodeAddress: inputs.nodeAddress,
            bootstrapLogPath: inputs.bootstrapLogPath,
            instanceId: inputs.instanceId,
            node: inputs.node,
            expectedRequests: inputs.expectedRequests,
            requests: result.requests,
            policy: inputs.policy,
            publicKey: result.publicKey,
            attempts: result.attempts,
            waitedMs: result.waitedMs,
            foundAt: new Date().toISOString(),
        };
        return { id: crypto.randomUUID(), outs };
    },

    async diff(_id: string, olds: WgPubkeyPollOutputs, news: WgPubkeyPollInputs) {
        const requests = requestChange(olds, news);
        const replaces: string[] = [...changedFields(olds, news, REPOLL_FIELDS), ...(requests === "replace" ? ["expectedRequests"] : [])];
        const changed = [...replaces, ...changedFields(olds, news, [...KEPT_FIELDS, "policy"] as const), ...(requests === "update" ? ["expectedRequests"] : [])];
        return { changes: changed.length > 0, diffs: changed, replaces, deleteBeforeReplace: false };
    },

    // Descriptive fields, the policy and the requests' expected names change in place; the material found stays.
    async update(_id: string, olds: WgPubkeyPollOutputs, news: WgPubkeyPollInputs) {
        const refused = publishedRequestProblems({ certificateRequests: olds.requests } as PublishedMaterial, news.expectedRequests);
        if (refused.length > 0) throw refusedToSign(news.nodeLabel, objectWhere(olds), refused.join("; "));
        const { requestNames: _legacy, ...kept } = olds;
        const outs: WgPubkeyPollOutputs = {
            ...kept,
            expectedRequests: news.expectedRequests,
            nodeLabel: news.nodeLabel,
            nodeAddress: news.nodeAddress,
            bootstrapLogPath: news.bootstrapLogPath,
            policy: news.policy,
        };
        return { outs };
    },

    read: readFromState<WgPubkeyPollOutputs>("public-key poll"),

    // The object expires with the bootstrap prefix's lifecycle rule; a public key needs no revoking.
    async delete() {},
};

export interface WgPubkeyPollArgs extends S3ObjectAccessArgs {
    /** The node's name in the runtime channel; the document must carry it. */
    node: pulumi.Input<string>;
    /** The publishing instance: when it changes, the poll runs again, and only its document counts. */
    instanceId: pulumi.Input<string>;
    /** By name, the certificate requests the document must hold and what each may ask for (none for the hub). */
    expectedRequests: pulumi.Input<Record<string, RequestedIdentity>>;
    nodeLabel: pulumi.Input<string>;
    nodeAddress: pulumi.Input<string>;
    bootstrapLogPath: pulumi.Input<string>;
    policy: pulumi.Input<PollPolicy>;
}

export class WgPubkeyPoll extends pulumi.dynamic.Resource {
    /** The node's WireGuard public key, exactly as `wg pubkey` printed it. */
    public readonly publicKey!: pulumi.Output<string>;
    /** PEM certificate requests by name, as the node made them. */
    public readonly requests!: pulumi.Output<Record<string, string>>;
    public readonly attempts!: pulumi.Output<number>;
    public readonly waitedMs!: pulumi.Output<number>;
    public readonly foundAt!: pulumi.Output<string>;

    constructor(name: string, args: WgPubkeyPollArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            wgPubkeyPollProvider,
            name,
            {
                ...withSecretCredentials(args),
                publicKey: undefined,
                requests: undefined,
                attempts: undefined,
                waitedMs: undefined,
                foundAt: undefined,
            },
            opts,
            "meshstack",
            "WgPubkeyPoll",
        );
    }
}
