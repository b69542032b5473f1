/**
 * The guard of a NATS image change (lib/natsRollout.ts). Its check() sees
 * the images of the last `up` (the engine's olds) beside this one's, and
 * fails when more than one existing node would change image, so the
 * preview stops before anything is replaced. The NATS instances depend on
 * it: in an `up`, none is replaced unless the guard passed.
 *
 * With the rejoin waits on, its update (in an `up`, before any instance is
 * replaced) also reads their pending marks from the runtime bucket, and
 * refuses to move a node's image while another replaced node has not been
 * seen current (lib/natsRollout.ts rejoinPendingProblem). A mark it cannot
 * read refuses too: the guard fails closed.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { natsImageChanges, natsImageRolloutProblem, PendingRejoin, rejoinPendingProblem } from "../lib/natsRollout";
import { RejoinPending } from "../lib/runtimeChannel";
import { objectWhere, S3Credentials, S3Location, signedObjectRequest } from "./s3";
import { readFromState } from "./stateOnly";
import { containsUnknown } from "./unknowns";

/** Where the rejoin waits leave their pending marks: the runtime bucket, read with the deploy's key. */
export interface RejoinMarks extends Omit<S3Location, "key">, S3Credentials {
    /** Mark object key by node name (natsNodeName). */
    keys: Record<string, string>;
}

export interface NatsImageRolloutInputs {
    /** Image by node name (natsNodeName), for every node the program declares. */
    images: Record<string, string>;
    /** Present when the rejoin waits are on. */
    rejoinMarks?: RejoinMarks;
}

/** The pending marks of these nodes that exist, read through the deploy's key; a mark that cannot be read is an error. */
async function pendingRejoins(marks: RejoinMarks, names: string[]): Promise<PendingRejoin[]> {
    const found: PendingRejoin[] = [];
    for (const name of names) {
        const location = { ...marks, key: marks.keys[name] };
        const response = await signedObjectRequest(location, marks, "GET");
        if (response.status === 404) continue;
        if (response.status !== 200) throw new Error(`the rollout guard could not read ${name}'s rejoin mark ${objectWhere(location)}: HTTP ${response.status} ${response.errorCode ?? ""}; no image moves until it can`);
        const mark = JSON.parse(response.body.toString("utf8")) as RejoinPending;
        found.push({ ...mark, name });
    }
    return found;
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

    async update(_id: string, olds: NatsImageRolloutInputs, news: NatsImageRolloutInputs) {
        const moving = natsImageChanges(olds.images, news.images);
        if (news.rejoinMarks && moving.length) {
            const marks = news.rejoinMarks;
            const problem = rejoinPendingProblem(moving, await pendingRejoins(marks, Object.keys(marks.keys).filter((name) => !moving.includes(name))));
            if (problem) throw new Error(problem);
        }
        return { outs: { images: news.images } };
    },

    read: readFromState<NatsImageRolloutInputs>("NATS image rollout guard"),

    async delete() {},
};

export interface NatsImageRolloutArgs {
    images: pulumi.Input<Record<string, string>>;
    rejoinMarks?: pulumi.Input<RejoinMarks>;
}

export class NatsImageRollout extends pulumi.dynamic.Resource {
    public readonly images!: pulumi.Output<Record<string, string>>;

    constructor(name: string, args: NatsImageRolloutArgs, opts?: pulumi.CustomResourceOptions) {
        // The marks hold the deploy's key pair: secret in state, and not an output anyone reads.
        super(natsImageRolloutProvider, name, { images: args.images, rejoinMarks: args.rejoinMarks && pulumi.secret(args.rejoinMarks) }, opts, "meshstack", "NatsImageRollout");
    }
}
