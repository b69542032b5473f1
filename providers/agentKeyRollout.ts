/**
 * Waits in `pulumi up` until every node's agent reports that it reads its
 * desired state with the agents' current key (lib/agentKey.ts): the report
 * each agent PUTs once it has proved the key with a signed GET and switched.
 *
 * What it holds back: an old key is revoked only after this wait. Kind
 * linode's old key is a resource the new program no longer declares, which
 * the engine deletes only after every other step of the `up` succeeded,
 * this one included; kind s3's is the operator's, told here when it is safe
 * to revoke.
 *
 * A node that has not reported by the deadline does not hold the rotation
 * forever, which would keep a key that may have leaked alive: the wait
 * names it, says what follows, and ends. A node that never reads with the
 * new key can read nothing once the old one is revoked; rebuilding it (its
 * label resource replaced) boots it with the current key.
 *
 * It waits only when the key changed: every node then has to switch, and
 * a node made in the same `up` reports once its agent first applies. When
 * the rollout is created, or only the nodes changed, every node booted with
 * the current key (each instance's user-data holds the key current when it
 * was made), and nothing is revoked, so there is nothing to wait for. The
 * engine's `cancel` does not reach dynamic providers: the deadline bounds
 * every wait.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { InputProblem, S3Credentials, S3Location, S3NetworkError, s3ObjectAccessProblems, signedObjectRequest } from "./s3";
import { ObjectStoreAccess, withSecretCredentials } from "./s3Args";
import { readFromState } from "./stateOnly";
import { changedFields, knownFailures } from "./unknowns";
import { agentKeyReportProblems, AGENT_KEY_ID_LENGTH } from "../lib/agentKey";
import { agentKeyReportKey } from "../lib/runtimeChannel";
import { formatSeconds } from "../lib/duration";

/** Agents run every AGENT_INTERVAL_SECONDS (10 s); a report is seen within a few seconds of being written. */
export const AGENT_KEY_POLL_INTERVAL_MS = 5_000;
/**
 * Room for a node's next agent runs, including the first apply of a node the
 * same `up` created: seconds on Linode, up to 4 minutes for VMs under
 * emulation on a loaded host (the box).
 */
export const AGENT_KEY_REPORT_DEADLINE_SECONDS = 600;

/** Who revokes a key no node reads with any more: the stack (kind linode deletes it) or the operator (kind s3). */
export type AgentKeyRevoker = "stack" | "operator";

export interface AgentKeyRolloutTarget {
    endpoint: string;
    region: string;
    bucket: string;
    stack: string;
    /** agentKeyId of the current key. */
    agentKeyId: string;
    /** Every node's instance id, by node name. */
    nodes: Record<string, string>;
    deadlineSeconds: number;
    revokedBy: AgentKeyRevoker;
}

export interface AgentKeyRolloutInputs extends AgentKeyRolloutTarget, S3Credentials {}

export interface AgentKeyRolloutOutputs extends AgentKeyRolloutTarget {
    /** Nodes that had not reported the key by the deadline (none when all did). */
    missing: string[];
    waitedMs: number;
}

/** What one GET saw: an S3 response or a network failure. */
export type ReportResponse = { status: number; body: Buffer } | { networkError: string };

export interface RolloutDeps {
    now(): number;
    sleep(ms: number): Promise<void>;
    get(node: string): Promise<ReportResponse>;
    log(line: string): void;
}

/** Whether the response is this node's report of this key, and if not, why. */
function reportStatus(response: ReportResponse, expected: { node: string; instanceId: string; agentKeyId: string }): string | undefined {
    if ("networkError" in response) return `network error (${response.networkError})`;
    if (response.status === 404) return "no report yet";
    if (response.status !== 200) return `HTTP ${response.status}`;
    let doc: unknown;
    try {
        doc = JSON.parse(response.body.toString("utf8"));
    } catch {
        return "a report that is not JSON";
    }
    const problems = agentKeyReportProblems(doc, expected);
    return problems.length ? `a report that ${problems.join("; ")}` : undefined;
}

/** What a node that never reported means, by who revokes the old key. */
export function unreportedConsequence(revokedBy: AgentKeyRevoker): string {
    return revokedBy === "stack"
        ? "the previous key is deleted at the end of this `up`, and those nodes can then read no desired state: rebuild each (pulumi up --replace <its label resource, such as nats-1-label>), which boots it with the current key"
        : "do not revoke the previous key in your store until they report (run `pulumi up` again to wait once more), or rebuild each (pulumi up --replace <its label resource>)";
}

/** GETs every pending node's report until all name this key and instance, or the deadline passes. */
export async function waitForAgentKeyReports(target: AgentKeyRolloutTarget, deps: RolloutDeps): Promise<{ missing: string[]; waitedMs: number }> {
    const start = deps.now();
    const deadline = start + target.deadlineSeconds * 1000;
    const pending = new Map(Object.entries(target.nodes).sort(([a], [b]) => a.localeCompare(b)));
    const total = pending.size;
    const lastStatus = new Map<string, string>();
    for (;;) {
        for (const [node, instanceId] of [...pending]) {
            const status = reportStatus(await deps.get(node), { node, instanceId, agentKeyId: target.agentKeyId });
            if (status === undefined) pending.delete(node);
            else lastStatus.set(node, status);
        }
        const elapsed = deps.now() - start;
        if (pending.size === 0) {
            deps.log(`agents' key ${target.agentKeyId}: all ${total} node(s) read with it (${formatSeconds(elapsed)})`);
            return { missing: [], waitedMs: elapsed };
        }
        const waiting = [...pending.keys()].map((node) => `${node} (${lastStatus.get(node)})`).join(", ");
        if (deps.now() >= deadline) {
            deps.log(
                `warning: agents' key ${target.agentKeyId}: ${[...pending.keys()].join(", ")} did not report reading with it within ${formatSeconds(target.deadlineSeconds * 1000)} ` +
                    `(last seen: ${waiting}); ${unreportedConsequence(target.revokedBy)}. Their agent's log: /var/log/meshstack-agent.log.`,
            );
            return { missing: [...pending.keys()], waitedMs: elapsed };
        }
        deps.log(`agents' key ${target.agentKeyId}: ${total - pending.size} of ${total} node(s) read with it; waiting for ${waiting}; giving up in ${formatSeconds(deadline - deps.now())}`);
        await deps.sleep(Math.min(AGENT_KEY_POLL_INTERVAL_MS, Math.max(0, deadline - deps.now())));
    }
}

export function agentKeyRolloutInputProblems(inputs: Partial<AgentKeyRolloutInputs>): InputProblem[] {
    const problems = s3ObjectAccessProblems({ ...inputs, key: "reports/" });
    if (typeof inputs.agentKeyId !== "string" || !new RegExp(`^[0-9a-f]{${AGENT_KEY_ID_LENGTH}}$`).test(inputs.agentKeyId)) {
        problems.push({ property: "agentKeyId", reason: `got ${JSON.stringify(inputs.agentKeyId)}; allowed: ${AGENT_KEY_ID_LENGTH} lowercase hex digits (agentKeyId)` });
    }
    const nodes = inputs.nodes;
    if (typeof nodes !== "object" || nodes === null || Object.keys(nodes).length === 0 || !Object.values(nodes).every((id) => typeof id === "string" && id !== "")) {
        problems.push({ property: "nodes", reason: "allowed: a non-empty object of node name to instance id" });
    }
    if (typeof inputs.deadlineSeconds !== "number" || !(inputs.deadlineSeconds > 0)) problems.push({ property: "deadlineSeconds", reason: `got ${JSON.stringify(inputs.deadlineSeconds)}; allowed: a number of seconds > 0` });
    if (inputs.revokedBy !== "stack" && inputs.revokedBy !== "operator") problems.push({ property: "revokedBy", reason: `got ${JSON.stringify(inputs.revokedBy)}; allowed: stack or operator` });
    return problems;
}

/** The inputs as state keeps them: without the deploy's key pair. */
function targetOf(inputs: AgentKeyRolloutInputs): AgentKeyRolloutTarget {
    const { accessKeyId: _id, secretAccessKey: _secret, ...target } = inputs;
    return target;
}

/** State for a rollout with nothing to wait for: every node booted with the current key. */
function noWait(inputs: AgentKeyRolloutInputs, why: string): AgentKeyRolloutOutputs {
    console.log(`agents' key ${inputs.agentKeyId}: ${why}; nothing to wait for`);
    return { ...targetOf(inputs), missing: [], waitedMs: 0 };
}

async function rollout(inputs: AgentKeyRolloutInputs, previousKeyId: string): Promise<AgentKeyRolloutOutputs> {
    const credentials = { accessKeyId: inputs.accessKeyId, secretAccessKey: inputs.secretAccessKey };
    const location = (node: string): S3Location => ({ endpoint: inputs.endpoint, region: inputs.region, bucket: inputs.bucket, key: agentKeyReportKey(inputs.stack, node) });
    const result = await waitForAgentKeyReports(inputs, {
        now: () => Date.now(),
        sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        get: (node) =>
            signedObjectRequest(location(node), credentials, "GET", undefined, 10_000).catch((err: Error) => ({
                networkError: err.name === "S3NetworkError" ? (err as S3NetworkError).reason : err.message,
            })),
        log: (line) => console.log(line),
    });
    if (result.missing.length === 0) {
        console.log(inputs.revokedBy === "stack"
            ? `agents' key ${previousKeyId}: no node reads with it any more; it is deleted at the end of this \`up\``
            : `agents' key ${previousKeyId}: no node reads with it any more; revoke it in your object store now`);
    }
    return { ...targetOf(inputs), ...result };
}

/** Where the reports are and whose: kept in state, updated in place. */
const TARGET_FIELDS = ["endpoint", "region", "bucket", "stack", "agentKeyId", "nodes"] as const;

export const agentKeyRolloutProvider: pulumi.dynamic.ResourceProvider<AgentKeyRolloutInputs, AgentKeyRolloutOutputs> = {
    async check(_olds: AgentKeyRolloutInputs, news: AgentKeyRolloutInputs) {
        return { inputs: news, failures: knownFailures(news, agentKeyRolloutInputProblems(news)) };
    },

    async create(inputs: AgentKeyRolloutInputs) {
        return { id: crypto.randomUUID(), outs: noWait(inputs, "every node booted with it") };
    },

    async diff(_id: string, olds: AgentKeyRolloutOutputs, news: AgentKeyRolloutInputs) {
        const changed = changedFields(olds, news, [...TARGET_FIELDS, "deadlineSeconds", "revokedBy"] as const);
        return { changes: changed.length > 0, diffs: changed, replaces: [], deleteBeforeReplace: false };
    },

    async update(_id: string, olds: AgentKeyRolloutOutputs, news: AgentKeyRolloutInputs) {
        if (news.agentKeyId === olds.agentKeyId) return { outs: noWait(news, "unchanged, and a node made since booted with it") };
        return { outs: await rollout(news, olds.agentKeyId) };
    },

    read: readFromState<AgentKeyRolloutOutputs>("agents' key rollout"),

    // Reports are public facts about a key, and a later rotation overwrites them.
    async delete() {},
};

/** The runtime bucket with the deploy's key pair (ObjectStore.runtime), which reads the reports; and what to wait for. */
export interface AgentKeyRolloutArgs extends ObjectStoreAccess {
    stack: string;
    agentKeyId: pulumi.Input<string>;
    nodes: pulumi.Input<Record<string, pulumi.Input<string>>>;
    deadlineSeconds: number;
    revokedBy: AgentKeyRevoker;
}

export class AgentKeyRollout extends pulumi.dynamic.Resource {
    /** Nodes that had not reported the current key by the deadline. */
    public readonly missing!: pulumi.Output<string[]>;

    constructor(name: string, args: AgentKeyRolloutArgs, opts?: pulumi.CustomResourceOptions) {
        super(agentKeyRolloutProvider, name, { ...withSecretCredentials(args), missing: undefined, waitedMs: undefined }, opts, "meshstack", "AgentKeyRollout");
    }
}
