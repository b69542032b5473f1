/**
 * Holds `pulumi up` at one NATS node while its agent moves to another
 * nats-server release (lib/natsRelease.ts), until the node reports the new
 * version healthy: /healthz 200 on the node itself, so JetStream's meta
 * group and every stream and consumer replica on it are current again.
 *
 * One per NATS node (`<node>-server-upgrade`). The desired state of the
 * next node depends on this one (components/meshRuntime.ts), so the next
 * node is given the release only once this one serves JetStream again:
 * one node at a time, in one `up`.
 *
 * - create: nothing to wait for. A new instance installs the release at its
 *   first apply, and the publish poll and the rejoin wait cover it.
 * - the same instance given another release (an upgrade or a downgrade):
 *   update, which reads the node's report through the runtime bucket until
 *   it names the new version healthy, or names it failed (the `up` fails,
 *   naming the node, the version it is back on, why, and its agent's log),
 *   or the deadline passes (the `up` fails, naming the node). A failed wait
 *   stops the roll: the next nodes' desired states are not written.
 * - another instance: replaced, which is a create: nothing to wait for.
 *
 * Nothing here dials the node: the report comes through the runtime bucket,
 * so this works where the deploying machine cannot reach the client port.
 * The engine's `cancel` does not reach dynamic providers: the deadline
 * bounds every wait.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { InputProblem, S3Credentials, S3NetworkError, s3ObjectAccessProblems, signedObjectRequest } from "./s3";
import { withSecretCredentials } from "./s3Args";
import { readFromState } from "./stateOnly";
import { changedFields, knownFailures } from "./unknowns";
import { NATS_SERVER_VERSION_PATTERN, NatsServerRelease, natsServerUpgradeOutcome } from "../lib/natsRelease";
import { natsServerReportKey } from "../lib/runtimeChannel";
import { formatSeconds } from "../lib/duration";

/** Agents run every AGENT_INTERVAL_SECONDS (10 s); a report is seen within a few seconds of being written. */
export const NATS_SERVER_UPGRADE_POLL_INTERVAL_MS = 5_000;
/** Where a node's agent logs each step of a move. */
const AGENT_LOG = "/var/log/meshstack-agent.log";

export interface NatsServerUpgradeTarget {
    endpoint: string;
    region: string;
    bucket: string;
    stack: string;
    /** The node's server name, as its report names it. */
    node: string;
    instanceId: string;
    release: NatsServerRelease;
    deadlineSeconds: number;
}

export interface NatsServerUpgradeInputs extends NatsServerUpgradeTarget, S3Credentials {}

export interface NatsServerUpgradeOutputs extends NatsServerUpgradeTarget {
    /** How long the last move took to be reported healthy; 0 when there was nothing to wait for. */
    waitedMs: number;
}

/** What one GET saw: an S3 response or a network failure. */
export type ReportResponse = { status: number; body: Buffer } | { networkError: string };

export interface UpgradeWaitDeps {
    now(): number;
    sleep(ms: number): Promise<void>;
    get(): Promise<ReportResponse>;
    log(line: string): void;
}

function outcomeOf(response: ReportResponse, target: NatsServerUpgradeTarget): ReturnType<typeof natsServerUpgradeOutcome> {
    if ("networkError" in response) return { state: "pending", why: `network error (${response.networkError})` };
    if (response.status === 404) return { state: "pending", why: "no report yet" };
    if (response.status !== 200) return { state: "pending", why: `HTTP ${response.status}` };
    let doc: unknown;
    try {
        doc = JSON.parse(response.body.toString("utf8"));
    } catch {
        return { state: "pending", why: "a report that is not JSON" };
    }
    return natsServerUpgradeOutcome(doc, { node: target.node, instanceId: target.instanceId, version: target.release.version });
}

/** GETs the node's report until it names the release healthy; throws when it names it failed or the deadline passes. */
export async function waitForNatsServerUpgrade(target: NatsServerUpgradeTarget, deps: UpgradeWaitDeps): Promise<{ waitedMs: number }> {
    const { node, release } = target;
    const start = deps.now();
    const deadline = start + target.deadlineSeconds * 1000;
    for (;;) {
        const outcome = outcomeOf(await deps.get(), target);
        const elapsed = deps.now() - start;
        if (outcome.state === "done") {
            deps.log(`${node}: nats-server ${release.version} healthy (${formatSeconds(elapsed)}); the next node may move`);
            return { waitedMs: elapsed };
        }
        if (outcome.state === "failed") {
            throw new Error(
                `${node} could not move to nats-server ${release.version}: ${outcome.reason}. It runs ${outcome.runs} again. ` +
                    `The roll stops here: the NATS nodes after it keep their release. Details in ${node}'s agent log, ${AGENT_LOG}. ` +
                    `The node does not try ${release.version} again by itself: fix the cause (or choose another release) and run \`pulumi up\` again; to retry the same release, see the README (nats-server upgrades).`,
            );
        }
        if (deps.now() >= deadline) {
            throw new Error(
                `${node} did not report nats-server ${release.version} healthy within ${formatSeconds(target.deadlineSeconds * 1000)} (last seen: ${outcome.why}). ` +
                    `The roll stops here: the NATS nodes after it keep their release. Look at ${node}'s agent log, ${AGENT_LOG}, and at \`systemctl status nats-server\` there.`,
            );
        }
        deps.log(`${node}: waiting for nats-server ${release.version} healthy (${outcome.why}); giving up in ${formatSeconds(deadline - deps.now())}`);
        await deps.sleep(Math.min(NATS_SERVER_UPGRADE_POLL_INTERVAL_MS, Math.max(0, deadline - deps.now())));
    }
}

export function natsServerUpgradeInputProblems(inputs: Partial<NatsServerUpgradeInputs>): InputProblem[] {
    const problems = s3ObjectAccessProblems({ ...inputs, key: "reports/" });
    for (const field of ["stack", "node", "instanceId"] as const) {
        if (typeof inputs[field] !== "string" || inputs[field] === "") problems.push({ property: field, reason: `got ${JSON.stringify(inputs[field])}; allowed: a non-empty string` });
    }
    const release = inputs.release;
    if (typeof release?.version !== "string" || !NATS_SERVER_VERSION_PATTERN.test(release.version)) {
        problems.push({ property: "release.version", reason: `got ${JSON.stringify(release?.version)}; allowed: a nats-server release tag such as v2.14.7` });
    }
    if (typeof inputs.deadlineSeconds !== "number" || !(inputs.deadlineSeconds > 0)) problems.push({ property: "deadlineSeconds", reason: `got ${JSON.stringify(inputs.deadlineSeconds)}; allowed: a number of seconds > 0` });
    return problems;
}

async function waitForNode(inputs: NatsServerUpgradeInputs): Promise<number> {
    const credentials = { accessKeyId: inputs.accessKeyId, secretAccessKey: inputs.secretAccessKey };
    const location = { endpoint: inputs.endpoint, region: inputs.region, bucket: inputs.bucket, key: natsServerReportKey(inputs.stack, inputs.node) };
    const { waitedMs } = await waitForNatsServerUpgrade(inputs, {
        now: () => Date.now(),
        sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        get: () =>
            signedObjectRequest(location, credentials, "GET", undefined, 10_000).catch((err: Error) => ({
                networkError: err.name === "S3NetworkError" ? (err as S3NetworkError).reason : err.message,
            })),
        log: (line) => console.log(line),
    });
    return waitedMs;
}

function targetOf(inputs: NatsServerUpgradeInputs): NatsServerUpgradeTarget {
    const { accessKeyId: _id, secretAccessKey: _secret, ...target } = inputs;
    return target;
}

/** Another instance, or another node: nothing of the old one's to wait for. */
const REPLACE_FIELDS = ["stack", "node", "instanceId"] as const;

export const natsServerUpgradeWaitProvider: pulumi.dynamic.ResourceProvider<NatsServerUpgradeInputs, NatsServerUpgradeOutputs> = {
    async check(_olds: NatsServerUpgradeInputs, news: NatsServerUpgradeInputs) {
        return { inputs: news, failures: knownFailures(news, natsServerUpgradeInputProblems(news)) };
    },

    async create(inputs: NatsServerUpgradeInputs) {
        return { id: crypto.randomUUID(), outs: { ...targetOf(inputs), waitedMs: 0 } };
    },

    async diff(_id: string, olds: NatsServerUpgradeOutputs, news: NatsServerUpgradeInputs) {
        const replaces = changedFields(olds, news, REPLACE_FIELDS);
        const changed = changedFields(olds, news, [...REPLACE_FIELDS, "endpoint", "region", "bucket", "release", "deadlineSeconds"] as const);
        return { changes: changed.length > 0, diffs: changed, replaces, deleteBeforeReplace: false };
    },

    async update(_id: string, olds: NatsServerUpgradeOutputs, news: NatsServerUpgradeInputs) {
        if (changedFields(olds, news, ["release"] as const).length === 0) return { outs: { ...targetOf(news), waitedMs: olds.waitedMs } };
        return { outs: { ...targetOf(news), waitedMs: await waitForNode(news) } };
    },

    read: readFromState<NatsServerUpgradeOutputs>("nats-server upgrade wait"),

    // A report describes the node, which outlives this wait.
    async delete() {},
};

export interface NatsServerUpgradeWaitArgs {
    endpoint: pulumi.Input<string>;
    region: pulumi.Input<string>;
    bucket: pulumi.Input<string>;
    /** The deploy's key pair (it reads the reports). */
    accessKeyId: pulumi.Input<string>;
    secretAccessKey: pulumi.Input<string>;
    stack: string;
    node: string;
    instanceId: pulumi.Input<string>;
    release: NatsServerRelease;
    deadlineSeconds: number;
}

export class NatsServerUpgradeWait extends pulumi.dynamic.Resource {
    public readonly waitedMs!: pulumi.Output<number>;

    constructor(name: string, args: NatsServerUpgradeWaitArgs, opts?: pulumi.CustomResourceOptions) {
        super(natsServerUpgradeWaitProvider, name, { ...withSecretCredentials(args), waitedMs: undefined }, opts, "meshstack", "NatsServerUpgradeWait");
    }
}
