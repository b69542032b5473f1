/**
 * What an `up` does to each resource, decided as the engine decides, so a
 * Day-2 change the tests call "same" is one the box leaves alone: a dynamic
 * resource by its own provider's diff(), any other by the inputs that differ
 * and which of them force a new resource (tooling/replacement.ts). Pure: the
 * deployment carries the step out.
 */
import { differingKeys, replacingInputs } from "../tooling/replacement";
import { BoxResource } from "./state";

export const DYNAMIC_PREFIX = "pulumi-nodejs:dynamic/";
export const INSTANCE_TYPE = "linode:index/instance:Instance";
export const FIREWALL_TYPE = "linode:index/firewall:Firewall";
export const OBJECT_STORAGE_KEY_TYPE = "linode:index/objectStorageKey:ObjectStorageKey";

/** What an `up` did to each resource the program declares (and to those it no longer does). */
export type BoxStep = "create" | "same" | "update" | "replace" | "delete";

export const STEP_MARK: Record<BoxStep, string> = { create: "+", same: "=", update: "~", replace: "+-", delete: "-" };

/** What the box can replace under running VMs: instances (a new VM) and random and tls material; buckets, keys and firewalls stay as the first `up` made them. */
export function replacedForReal(type: string): boolean {
    return type === INSTANCE_TYPE || type.startsWith("random:") || type.startsWith("tls:");
}

export function shortType(type: string): string {
    const [pkg, , member] = type.split(":");
    return `${pkg.replace(/^pulumi-nodejs$/, "dynamic")}:${member ?? type}`;
}

/** A dynamic provider's diff() as the engine reads it: replaced on request or when an input forces it, else updated if anything changed. */
export function dynamicStep(diff: { changes?: boolean; diffs?: string[]; replaces?: string[] }, forced: boolean): { step: "same" | "update" | "replace"; why: string[] } {
    const why = [...(forced ? ["(replaced on request)"] : []), ...(diff.diffs ?? [])];
    if (forced || (diff.replaces ?? []).length) return { step: "replace", why };
    if (!diff.changes) return { step: "same", why };
    return { step: "update", why };
}

/** The engine's rule for other providers (tooling/replacement.ts): the inputs that differ, and whether any forces a new resource. Throws for a change the box cannot carry out under running VMs. */
export function otherStep(old: Pick<BoxResource, "type" | "name" | "inputs">, inputs: Record<string, any>, forced: boolean): { step: "same" | "replace"; why: string[] } {
    const differing = differingKeys(old.inputs, inputs);
    const why = [...(forced ? ["(replaced on request)"] : []), ...differing];
    if (!forced && differing.length === 0) return { step: "same", why };
    const replace = forced || differing.some(replacingInputs(old.type));
    if (!replace || !replacedForReal(old.type)) {
        throw new Error(`${old.name}: the box cannot ${replace ? "replace" : "update"} a ${shortType(old.type)} under running VMs (${why.join(", ")}); bring the box down and up again`);
    }
    return { step: "replace", why };
}
