/**
 * The guard of a NATS image change (lib/natsRollout.ts). Its check() sees
 * the images of the last `up` (the engine's olds) beside this one's, and
 * fails when more than one existing node would change image, so the
 * preview stops before anything is replaced. The NATS instances depend on
 * it: in an `up`, none is replaced unless the guard passed.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { natsImageRolloutProblem } from "../lib/natsRollout";
import { readFromState } from "./stateOnly";
import { containsUnknown } from "./unknowns";

export interface NatsImageRolloutInputs {
    /** Image by node name (natsNodeName), for every node the program declares. */
    images: Record<string, string>;
}

function imagesProblem(images: unknown): string | undefined {
    const valid = typeof images === "object" && images !== null && !Array.isArray(images) && Object.values(images).every((v) => typeof v === "string" && v !== "");
    return valid ? undefined : `got ${JSON.stringify(images)}; allowed: an object of node name to Linode image id`;
}

export const natsImageRolloutProvider: pulumi.dynamic.ResourceProvider<NatsImageRolloutInputs, NatsImageRolloutInputs> = {
    async check(olds: Partial<NatsImageRolloutInputs>, news: NatsImageRolloutInputs) {
        if (containsUnknown(news.images)) return { inputs: news };
        const shape = imagesProblem(news.images);
        if (shape) return { inputs: news, failures: [{ property: "images", reason: shape }] };
        // No olds: a new stack, or a stack from before this guard (its nodes were never rolled by it).
        if (!olds?.images || imagesProblem(olds.images) || containsUnknown(olds.images)) return { inputs: news };
        const problem = natsImageRolloutProblem(olds.images, news.images);
        return { inputs: news, failures: problem ? [{ property: "images", reason: problem }] : [] };
    },

    async create(inputs: NatsImageRolloutInputs) {
        return { id: crypto.randomUUID(), outs: { images: inputs.images } };
    },

    async diff(_id: string, olds: NatsImageRolloutInputs, news: NatsImageRolloutInputs) {
        const changed = containsUnknown(news.images) || JSON.stringify(olds.images) !== JSON.stringify(news.images);
        return { changes: changed, diffs: changed ? ["images"] : [], replaces: [], deleteBeforeReplace: false };
    },

    async update(_id: string, _olds: NatsImageRolloutInputs, news: NatsImageRolloutInputs) {
        return { outs: { images: news.images } };
    },

    read: readFromState<NatsImageRolloutInputs>("NATS image rollout guard"),

    async delete() {},
};

export interface NatsImageRolloutArgs {
    images: pulumi.Input<Record<string, string>>;
}

export class NatsImageRollout extends pulumi.dynamic.Resource {
    public readonly images!: pulumi.Output<Record<string, string>>;

    constructor(name: string, args: NatsImageRolloutArgs, opts?: pulumi.CustomResourceOptions) {
        super(natsImageRolloutProvider, name, { images: args.images }, opts, "meshstack", "NatsImageRollout");
    }
}
