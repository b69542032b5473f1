/**
 * How the engine decides, for a resource that is not a dynamic one, between
 * leaving it, updating it in place and replacing it: the inputs that differ
 * from the last `up`, and which of them its provider cannot change in place.
 * The test engine (tests/support/engine.ts) and the box's second `up`
 * (box/steps.ts, box/deployment.ts) both decide with these, so a change the
 * tests call "same" is the change the box leaves alone.
 */
import { UNKNOWN } from "../providers/unknowns";

/**
 * Inputs that make the engine replace a resource instead of updating it.
 * Every input of @pulumi/random and @pulumi/tls resources forces a new one;
 * Linode instances are replaced for image, region, root keys and user-data
 * (`metadata.user_data` cannot change in place).
 */
export function replacingInputs(type: string): (key: string) => boolean {
    if (type.startsWith("random:") || type.startsWith("tls:")) return () => true;
    if (type === "linode:index/instance:Instance") return (key) => ["image", "region", "authorizedKeys", "metadatas", "rootPass", "stackscriptId"].includes(key);
    if (type === "linode:index/objectStorageBucket:ObjectStorageBucket") return (key) => ["label", "region", "cluster"].includes(key);
    if (type === "linode:index/objectStorageKey:ObjectStorageKey") return (key) => ["bucketAccesses", "label"].includes(key);
    return () => false;
}

/** Top-level inputs whose values differ, or may differ because they are not known yet (a preview). */
export function differingKeys(olds: Record<string, unknown>, news: Record<string, unknown>): string[] {
    const keys = new Set([...Object.keys(olds), ...Object.keys(news)]);
    return [...keys].filter((k) => JSON.stringify(olds[k]) !== JSON.stringify(news[k]) || JSON.stringify(news[k] ?? null).includes(UNKNOWN)).sort();
}

/**
 * The inputs the engine works with for a resource that already exists:
 * the program's, except that each top-level property named in its
 * `ignoreChanges` keeps the value the last `up` applied. Pulumi substitutes
 * them before its diff, so they neither update nor replace the resource,
 * and a replacement made for another reason is created with them too; only
 * a resource with no state (its first create) gets the program's value
 * (https://www.pulumi.com/docs/iac/concepts/options/ignorechanges/,
 * pulumi/pulumi#2657). A property the last `up` did not set keeps the
 * program's value.
 */
export function withIgnoredChanges(olds: Record<string, unknown>, news: Record<string, unknown>, ignoreChanges: readonly string[] = []): Record<string, unknown> {
    const kept = { ...news };
    for (const key of ignoreChanges) {
        if (/[.[\]"]/.test(key)) throw new Error(`ignoreChanges ${JSON.stringify(key)}: a property path; the engine stand-ins take top-level property names only`);
        if (key in olds) kept[key] = olds[key];
    }
    return kept;
}
