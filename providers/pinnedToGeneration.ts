/**
 * Values pinned to a node's boot generation: they take the current values
 * when the generation is new and keep them for the generation's life,
 * whatever the values become afterwards. What a node's user-data needs from
 * something that rotates (the agents' key): a replacement instance boots
 * with the key current when it is made, and a rotation rewrites no running
 * node's user-data, which Linode would answer by replacing the instance.
 *
 * Why not `ignoreChanges`: the engine puts an ignored property's old value
 * into a replacement too, so a node rebuilt after a rotation would boot with
 * the revoked key and never read its desired state.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { readFromState } from "./stateOnly";
import { containsUnknown, knownFailures } from "./unknowns";

export interface PinnedToGenerationInputs {
    /** The node's boot generation (MeshNode.generation). */
    generation: string;
    /** The values as they are now; kept as they were when the generation began. */
    values: Record<string, string>;
}

export type PinnedToGenerationOutputs = PinnedToGenerationInputs;

export function pinnedInputProblems(inputs: Partial<PinnedToGenerationInputs>): { property: string; reason: string }[] {
    const problems: { property: string; reason: string }[] = [];
    if (typeof inputs.generation !== "string" || inputs.generation === "") problems.push({ property: "generation", reason: `got ${JSON.stringify(inputs.generation)}; allowed: a non-empty string` });
    const values = inputs.values;
    if (typeof values !== "object" || values === null || !Object.values(values).every((v) => typeof v === "string")) {
        problems.push({ property: "values", reason: "allowed: an object of strings" });
    }
    return problems;
}

export const pinnedToGenerationProvider: pulumi.dynamic.ResourceProvider<PinnedToGenerationInputs, PinnedToGenerationOutputs> = {
    async check(_olds: PinnedToGenerationInputs, news: PinnedToGenerationInputs) {
        return { inputs: news, failures: knownFailures(news, pinnedInputProblems(news)) };
    },

    async create(inputs: PinnedToGenerationInputs) {
        return { id: crypto.randomUUID(), outs: { generation: inputs.generation, values: inputs.values } };
    },

    // Only a new generation takes new values; an unknown one (its label being replaced in a preview) may be new.
    async diff(_id: string, olds: PinnedToGenerationOutputs, news: PinnedToGenerationInputs) {
        const renewed = containsUnknown(news.generation) || news.generation !== olds.generation;
        return renewed ? { changes: true, replaces: ["generation"], deleteBeforeReplace: false } : { changes: false };
    },

    read: readFromState<PinnedToGenerationOutputs>("generation-pinned value"),

    async delete() {},
};

export interface PinnedToGenerationArgs {
    generation: pulumi.Input<string>;
    values: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

export class PinnedToGeneration extends pulumi.dynamic.Resource {
    public readonly values!: pulumi.Output<Record<string, string>>;

    constructor(name: string, args: PinnedToGenerationArgs, opts?: pulumi.CustomResourceOptions) {
        super(pinnedToGenerationProvider, name, { generation: args.generation, values: pulumi.secret(args.values) }, { ...opts, additionalSecretOutputs: ["values"] }, "meshstack", "PinnedToGeneration");
    }
}
