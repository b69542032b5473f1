/**
 * Inputs not known yet. During a preview the engine hands a dynamic
 * provider's check() and diff() this sentinel in place of every input that
 * depends on an output of a resource not created (or about to change): on a
 * fresh stack that is the bucket, its keys and every instance output. A
 * provider validates what is known and leaves the rest to create/update,
 * which always get real values; diff() counts an unknown as a possible change.
 *
 * Captured by value into serialized providers: plain functions only.
 */

/** The Pulumi SDK's unknown-value sentinel, as the dynamic-provider host receives it. */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

export function containsUnknown(value: unknown): boolean {
    if (value === UNKNOWN) return true;
    if (Array.isArray(value)) return value.some(containsUnknown);
    if (value && typeof value === "object") return Object.values(value).some(containsUnknown);
    return false;
}

/** The value at a check() failure's property path ("policy.timeoutMs"); unknown when any part of the path is. */
function valueAt(inputs: object, property: string): unknown {
    let value: unknown = inputs;
    for (const part of property.split(".")) {
        if (value === UNKNOWN) return UNKNOWN;
        value = value && typeof value === "object" ? (value as Record<string, unknown>)[part] : undefined;
    }
    return value;
}

/**
 * The failures that concern known values. A rule over an unknown value
 * (or over one that contains one) cannot be decided yet; create and update
 * run the same rules on the resolved inputs.
 */
export function knownFailures<T extends { property: string }>(inputs: object, failures: T[]): T[] {
    return failures.filter((failure) => !containsUnknown(valueAt(inputs, failure.property)));
}

/** Fields whose new value differs from the old one, or is not known yet and so may differ. */
export function changedFields<K extends string>(olds: Partial<Record<K, unknown>>, news: Partial<Record<K, unknown>>, fields: readonly K[]): K[] {
    return fields.filter((field) => containsUnknown(news[field]) || JSON.stringify(olds[field]) !== JSON.stringify(news[field]));
}
