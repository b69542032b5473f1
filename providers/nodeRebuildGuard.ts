/**
 * The guard of a node's rebuild (lib/rebuild.ts). Its check() sees the
 * rebuild inputs of the last `up` (the engine's olds) beside this one's: a
 * change that rebuilds the node is printed as a warning line, or, on a node
 * whose state the environment protects, fails the check so the preview stops
 * before anything is replaced. The node's label (the root of its
 * replacement) depends on it: in an `up`, nothing is replaced unless the
 * guard passed.
 *
 * The `up` that creates the guard has no olds, so it decides nothing: the
 * guard protects from its second `up` on.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { RebuildInputs, rebuildDecision, RebuildPolicy, REBUILD_TOKEN } from "../lib/rebuild";
import { readFromState } from "./stateOnly";
import { containsUnknown } from "./unknowns";

export interface NodeRebuildGuardInputs {
    inputs: RebuildInputs;
    policy: RebuildPolicy;
}

function inputsProblem(inputs: unknown): string | undefined {
    const valid = typeof inputs === "object" && inputs !== null && !Array.isArray(inputs) && Object.values(inputs).every((v) => typeof v === "string");
    return valid ? undefined : `got ${JSON.stringify(inputs)}; allowed: an object of rebuild input name to its value`;
}

function policyProblem(policy: RebuildPolicy | undefined): string | undefined {
    if (!policy || typeof policy.node !== "string" || typeof policy.refuse !== "boolean" || !Array.isArray(policy.rolled) || !Array.isArray(policy.accepted)) {
        return `got ${JSON.stringify(policy)}; allowed: { node, sources, rolled, refuse, accepted }`;
    }
    const bad = policy.accepted.filter((token) => !REBUILD_TOKEN.test(token));
    return bad.length ? `accepted tokens ${JSON.stringify(bad)} are not <node>@<8 hex>` : undefined;
}

export const nodeRebuildGuardProvider: pulumi.dynamic.ResourceProvider<NodeRebuildGuardInputs, NodeRebuildGuardInputs> = {
    async check(olds: Partial<NodeRebuildGuardInputs>, news: NodeRebuildGuardInputs) {
        if (containsUnknown(news.inputs) || containsUnknown(news.policy)) return { inputs: news };
        const failures = [
            { property: "inputs", reason: inputsProblem(news.inputs) },
            { property: "policy", reason: policyProblem(news.policy) },
        ].filter((f): f is { property: string; reason: string } => f.reason !== undefined);
        if (failures.length) return { inputs: news, failures };
        // No olds: a new node, or a node from before this guard.
        if (!olds?.inputs || inputsProblem(olds.inputs) || containsUnknown(olds.inputs)) return { inputs: news };
        const decision = rebuildDecision(olds.inputs, news.inputs, news.policy);
        if (decision.kind === "refuse") return { inputs: news, failures: [{ property: "inputs", reason: decision.message }] };
        // The dynamic-provider host has no engine connection (pulumi/pulumi#18249): what it prints is what the CLI shows.
        if (decision.kind === "warn") console.log(`warning: ${decision.message}`);
        return { inputs: news };
    },

    async create(inputs: NodeRebuildGuardInputs) {
        return { id: crypto.randomUUID(), outs: inputs };
    },

    async diff(_id: string, olds: NodeRebuildGuardInputs, news: NodeRebuildGuardInputs) {
        const diffs = (["inputs", "policy"] as const).filter((key) => containsUnknown(news[key]) || JSON.stringify(olds[key]) !== JSON.stringify(news[key]));
        return { changes: diffs.length > 0, diffs: [...diffs], replaces: [], deleteBeforeReplace: false };
    },

    async update(_id: string, _olds: NodeRebuildGuardInputs, news: NodeRebuildGuardInputs) {
        return { outs: news };
    },

    read: readFromState<NodeRebuildGuardInputs>("node rebuild guard"),

    async delete() {},
};

export interface NodeRebuildGuardArgs {
    inputs: pulumi.Input<Record<string, pulumi.Input<string>>>;
    policy: pulumi.Input<RebuildPolicy>;
}

export class NodeRebuildGuard extends pulumi.dynamic.Resource {
    constructor(name: string, args: NodeRebuildGuardArgs, opts?: pulumi.CustomResourceOptions) {
        super(nodeRebuildGuardProvider, name, { inputs: args.inputs, policy: args.policy }, opts, "meshstack", "NodeRebuildGuard");
    }
}
