/**
 * How a stack key is declared: its type, default, what is allowed and the
 * check of one value. Each section module (access, objectStore, ...) declares
 * its keys with these next to the rules that relate them; keys.ts joins them
 * into the one table Pulumi.yaml is generated from.
 */
import { redactPrivateKeys } from "../secretText";
import { ConfigError, ConfigWarning } from "./report";

export type ConfigValue = string | number | boolean | string[];

/** The values of the keys that parsed, by unqualified key: what the cross-key rules read. */
export type ParsedValues = Record<string, ConfigValue>;

/**
 * The values once every rule passed: each key holds its declared type, which
 * only the section that declares it knows, so its builder reads them untyped.
 */
export type CheckedValues = Record<string, never>;

/** Why one value is not allowed, or undefined. */
export type Check = (value: ConfigValue) => string | undefined;

/** A rule over two or more keys; checked only when its inputs parsed. */
export type CrossKeyRule = (v: ParsedValues) => ConfigError | undefined;

export type WarningRule = (v: ParsedValues) => ConfigWarning[];

export interface KeySpec {
    type: "string" | "integer" | "boolean" | "array";
    description: string;
    /** Human description of the allowed values, used in every error for this key. */
    allowed: string;
    default?: ConfigValue;
    /**
     * The key may stay unset. Pulumi.yaml declares it with `default: ""`
     * (the CLI requires every key declared without a default), so an empty
     * string means unset for these keys and only for these.
     */
    optional?: true;
    /** The value must be supplied with `pulumi config set --secret`. */
    secret?: boolean;
    /** What the offline plan uses for this key, since it never decrypts secrets. */
    offlineStandIn?: string;
    check?: Check;
    /**
     * For lists: what makes two items the same entry (a CIDR's network, an
     * SSH key's type and body without its comment); the item itself if unset.
     */
    itemIdentity?: (item: string) => string;
}

/** One section's keys, in the order Pulumi.yaml lists them, with an optional comment above them there. */
export interface ConfigSection {
    keys: Record<string, KeySpec>;
    comment?: string[];
}

/**
 * A PEM-framed text. Stand-ins and test values are built with it, so no
 * file holds a literal private-key header that secret scanners would flag.
 */
export function pemBlock(label: string, body: string): string {
    return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

export function matches(pattern: RegExp): Check {
    return (v) => (typeof v === "string" && pattern.test(v) ? undefined : "does not match");
}

export function intRange(min: number, max: number): Check {
    return (v) => (typeof v === "number" && v >= min && v <= max ? undefined : "out of range");
}

export function oneOf(...values: string[]): Check {
    return (v) => (typeof v === "string" && values.includes(v) ? undefined : "not one of the allowed values");
}

/** Every bad item, not only the first, so one run of the check names all of them; private keys shown by fingerprint. */
export function each(check: Check): Check {
    return (v) => {
        if (!Array.isArray(v)) return "not a list";
        const bad = v.map((item, i) => [i, check(item)] as const).filter(([, problem]) => problem);
        return bad.length ? bad.map(([i, problem]) => `item ${i} (${redactPrivateKeys(JSON.stringify(v[i]))}) ${problem}`).join("; ") : undefined;
    };
}

/** Lists whose entries a cross-key rule reads (operator peers, per-node images): only their shape is checked alone. */
export const stringList: Check = (v) => (Array.isArray(v) && v.every((e) => typeof e === "string") ? undefined : "is not a list of strings");
