/**
 * Per-key parsing: each raw string Pulumi hands over is decoded to its
 * key's type and checked alone (placeholder, secrecy, rule, repeats);
 * unknown, misspelt and retired keys are named with what to write instead.
 */
import { redactPrivateKeys } from "../secretText";
import { editDistance } from "./editDistance";
import { ConfigValue, KeySpec, ParsedValues } from "./keySpec";
import { CONFIG_KEYS } from "./keys";
import { CONFIG_NAMESPACE, ConfigError, qualify } from "./report";

export interface RawConfig {
    /** Fully qualified key -> the string Pulumi stores (arrays as JSON). */
    values: Record<string, string>;
    /** Fully qualified keys that were set with --secret. */
    secretKeys: ReadonlySet<string>;
}

/**
 * Template markers: <...>, CHANGEME in any case, and TODO/FIXME written as
 * markers are (upper case), so a value such as "todo-app" is not one.
 */
const PLACEHOLDERS = [/<[^<>]*>/, /change_?me/i, /\b(TODO|FIXME)\b/];

function isPlaceholder(raw: string): boolean {
    return PLACEHOLDERS.some((pattern) => pattern.test(raw));
}

function shown(spec: KeySpec, raw: string): string {
    return spec.secret ? "[secret]" : redactPrivateKeys(raw);
}

/** A raw value as messages may show it: a secret key's never, a private key by fingerprint. */
export function shownValue(fullKey: string, raw: string): string {
    const spec = fullKey.startsWith(`${CONFIG_NAMESPACE}:`) ? CONFIG_KEYS[fullKey.slice(CONFIG_NAMESPACE.length + 1)] : undefined;
    return spec ? shown(spec, raw) : redactPrivateKeys(raw);
}

/** Items that name the same entry as an earlier one (by the key's identity), each named with the item it repeats. */
function duplicatesProblem(spec: KeySpec, items: string[]): string | undefined {
    const identity = spec.itemIdentity ?? ((item: string) => item);
    const first = new Map<string, number>();
    const repeats: string[] = [];
    items.forEach((item, i) => {
        const id = identity(item);
        const earlier = first.get(id);
        if (earlier === undefined) first.set(id, i);
        else repeats.push(`item ${i} (${redactPrivateKeys(JSON.stringify(item))}) repeats item ${earlier}${item === items[earlier] ? "" : ` (${redactPrivateKeys(JSON.stringify(items[earlier]))})`}`);
    });
    return repeats.length ? `${repeats.join("; ")}; each entry may appear once` : undefined;
}

/** Converts one raw string to the key's type, or says why it cannot. */
function decode(spec: KeySpec, raw: string): { value?: ConfigValue; problem?: string } {
    switch (spec.type) {
        case "string":
            return { value: raw };
        case "integer":
            return /^-?[0-9]+$/.test(raw.trim()) ? { value: Number(raw.trim()) } : { problem: "is not an integer" };
        case "boolean":
            return raw === "true" || raw === "false" ? { value: raw === "true" } : { problem: "is not true or false" };
        case "array": {
            let parsed: unknown;
            try {
                parsed = JSON.parse(raw);
            } catch {
                return { problem: "is not a YAML/JSON list" };
            }
            if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === "string")) {
                return { problem: "is not a list of strings" };
            }
            const placeholder = parsed.find((x) => x === "" || isPlaceholder(x));
            if (placeholder !== undefined) return { problem: `holds a placeholder or empty item (${JSON.stringify(placeholder)})` };
            return { value: parsed };
        }
    }
}

function closestKey(unknown: string): string | undefined {
    const [best] = Object.keys(CONFIG_KEYS)
        .map((k) => [k, editDistance(unknown, k)] as const)
        .sort((a, b) => a[1] - b[1]);
    return best && best[1] <= 3 ? best[0] : undefined;
}

/** A namespace this close to ours is a typo: its keys would otherwise be ignored without a word. */
const NAMESPACE_TYPO_DISTANCE = 2;

/**
 * Keys meshstack no longer reads, with what replaced them: a stack file that
 * still sets one is told what to do instead of "unknown key".
 */
const RETIRED_KEYS: Record<string, string> = {
    bootstrapCleanupDelaySeconds:
        "was removed: a node's bootstrap object is now deleted as soon as the node publishes (it has fetched its config then), " +
        "or after meshstack:wgPubkeyPollTimeoutSeconds; delete this line",
};

/** Keys set in the stack that meshstack does not read: a misspelt namespace, a retired key, an unknown key. */
function unreadKeyErrors(raw: RawConfig): ConfigError[] {
    const errors: ConfigError[] = [];
    const prefix = `${CONFIG_NAMESPACE}:`;
    for (const fullKey of Object.keys(raw.values)) {
        const [namespace, name = ""] = fullKey.split(":");
        if (namespace !== CONFIG_NAMESPACE && editDistance(namespace, CONFIG_NAMESPACE) <= NAMESPACE_TYPO_DISTANCE) {
            const hint = closestKey(name);
            errors.push({
                key: fullKey,
                value: raw.secretKeys.has(fullKey) ? "[secret]" : redactPrivateKeys(raw.values[fullKey]),
                message: `unknown namespace ${JSON.stringify(namespace)}; did you mean ${qualify(hint ?? name)}? allowed: meshstack:<key> for a key Pulumi.yaml declares`,
            });
            continue;
        }
        if (!fullKey.startsWith(prefix)) continue;
        const key = fullKey.slice(prefix.length);
        if (key in RETIRED_KEYS) {
            errors.push({ key: fullKey, message: RETIRED_KEYS[key] });
        } else if (!(key in CONFIG_KEYS)) {
            const hint = closestKey(key);
            errors.push({
                key: fullKey,
                // A misspelt secret key (proxmoxTokenSecrte) most likely holds that secret, in clear.
                value: raw.secretKeys.has(fullKey) || (hint && CONFIG_KEYS[hint].secret) ? "[secret]" : redactPrivateKeys(raw.values[fullKey]),
                message: `unknown key${hint ? `; did you mean ${qualify(hint)}?` : ""}; allowed: a key Pulumi.yaml declares (see it for every key)`,
            });
        }
    }
    return errors;
}

/** Why one set value is refused, or its value: empty, placeholder, secrecy, type, repeats and the key's rule. */
function keyValue(spec: KeySpec, fullKey: string, rawValue: string, secretKeys: ReadonlySet<string>): { value: ConfigValue } | { problem: string } {
    if (rawValue.trim() === "") return { problem: "is empty" };
    if (spec.type !== "array" && isPlaceholder(rawValue)) return { problem: "is still a placeholder" };
    if (spec.secret && !secretKeys.has(fullKey)) return { problem: "must be set with `pulumi config set --secret` so it is encrypted in the stack file" };
    const { value, problem } = decode(spec, rawValue);
    if (problem || value === undefined) return { problem: problem ?? "cannot be read" };
    // A list's repeats and its bad items are reported together: one pass fixes both.
    const problems = [Array.isArray(value) ? duplicatesProblem(spec, value) : undefined, spec.check?.(value)].filter((p): p is string => !!p);
    return problems.length ? { problem: problems.join("; ") } : { value };
}

/** Per-key parsing: type, placeholder, rule and secrecy, plus unknown keys. */
export function parseKeys(raw: RawConfig): { values: ParsedValues; errors: ConfigError[] } {
    const errors = unreadKeyErrors(raw);
    const values: ParsedValues = {};
    for (const [key, spec] of Object.entries(CONFIG_KEYS)) {
        const fullKey = qualify(key);
        const rawValue = raw.values[fullKey];
        if (rawValue === undefined || (spec.optional && rawValue === "")) {
            if (spec.default !== undefined && !(spec.optional && spec.default === "")) values[key] = spec.default;
            continue;
        }
        const parsed = keyValue(spec, fullKey, rawValue, raw.secretKeys);
        if ("problem" in parsed) errors.push({ key: fullKey, value: shown(spec, rawValue), message: `${parsed.problem}; allowed: ${spec.allowed}` });
        else values[key] = parsed.value;
    }
    return { values, errors };
}
