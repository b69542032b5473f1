/**
 * Fails an `up` at once when an instance was just created with presigned
 * URLs in its user-data that have already expired. The URLs are signed per
 * boot generation (the node's label), so an instance replaced on its own
 * (`pulumi up --replace` of the instance, not of its label) boots with the
 * URLs of its predecessor: it cannot fetch an #include cloud-config nor
 * publish its public material, and the deploy would otherwise wait out the
 * whole public-key poll. The poll waits for this check.
 *
 * Only a new instance under an existing check is judged: a check made for
 * the first time finds either a node whose URLs were just signed or, on a
 * stack from before this check, a node that booted long ago and needs its
 * URLs no more.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { readFromState } from "./stateOnly";
import { changedFields } from "./unknowns";

export interface BootUrlsCheckInputs {
    /** The instance whose user-data carries the URLs: a new one is checked again. */
    instanceId: string;
    /** When the first of the URLs in its user-data lapses (ISO 8601). */
    expiresAt: string;
    /** Linode label, for the message. */
    nodeLabel: string;
    /** Logical name of the node's label resource: what to replace instead. */
    labelResource: string;
}

export interface BootUrlsCheckOutputs extends BootUrlsCheckInputs {
    checkedAt: string;
}

/** Why the instance cannot use its boot URLs; undefined when it can. */
export function bootUrlsProblem(inputs: BootUrlsCheckInputs, nowMs: number): string | undefined {
    const expiresMs = Date.parse(inputs.expiresAt);
    if (Number.isNaN(expiresMs)) return `expiresAt ${JSON.stringify(inputs.expiresAt)} is not a time`;
    if (nowMs < expiresMs) return undefined;
    return (
        `instance ${inputs.instanceId} (${inputs.nodeLabel}) was created with user-data whose presigned URLs expired at ${inputs.expiresAt}: ` +
        "it can neither fetch an #include cloud-config nor publish its public material, so it will never join. " +
        "The URLs are signed per boot generation, and an instance replaced on its own keeps its predecessor's. " +
        `Rebuild the node through its label instead: pulumi up --replace <urn of ${inputs.labelResource}> (pulumi stack --show-urns lists it); ` +
        "that up replaces this instance too."
    );
}

export const bootUrlsCheckProvider: pulumi.dynamic.ResourceProvider<BootUrlsCheckInputs, BootUrlsCheckOutputs> = {
    async create(inputs: BootUrlsCheckInputs) {
        return { id: crypto.randomUUID(), outs: { ...inputs, checkedAt: new Date().toISOString() } };
    },

    async diff(_id: string, olds: BootUrlsCheckOutputs, news: BootUrlsCheckInputs) {
        const changed = changedFields(olds, news, ["instanceId", "expiresAt", "nodeLabel", "labelResource"] as const);
        return { changes: changed.length > 0, diffs: changed, replaces: [], deleteBeforeReplace: false };
    },

    async update(_id: string, olds: BootUrlsCheckOutputs, news: BootUrlsCheckInputs) {
        const problem = news.instanceId !== olds.instanceId ? bootUrlsProblem(news, Date.now()) : undefined;
        if (problem) throw new Error(problem);
        return { outs: { ...news, checkedAt: new Date().toISOString() } };
    },

    read: readFromState<BootUrlsCheckOutputs>("boot URL check"),

    async delete() {},
};

export interface BootUrlsCheckArgs {
    instanceId: pulumi.Input<string>;
    expiresAt: pulumi.Input<string>;
    nodeLabel: pulumi.Input<string>;
    labelResource: string;
}

export class BootUrlsCheck extends pulumi.dynamic.Resource {
    constructor(name: string, args: BootUrlsCheckArgs, opts?: pulumi.CustomResourceOptions) {
        super(bootUrlsCheckProvider, name, { ...args, checkedAt: undefined }, opts, "meshstack", "BootUrlsCheck");
    }
}
