/**
 * The resource types the box carries out, and what an `up` can do to each:
 * the steps it reports and which types it can replace under running VMs.
 */
export const DYNAMIC_PREFIX = "pulumi-nodejs:dynamic/";
export const INSTANCE_TYPE = "linode:index/instance:Instance";
export const FIREWALL_TYPE = "linode:index/firewall:Firewall";

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
