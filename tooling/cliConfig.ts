/**
 * What the Pulumi CLI does with Pulumi.yaml and a stack file before any
 * program code runs, so the offline plan and the tests see the config the
 * program would see under the real engine, and refuse what the CLI refuses:
 *
 * - the project's `config:` is validated: an explicitly typed key's default
 *   must have its type, an array must declare `items`;
 * - every project-namespaced key declared without `default` (or `value`)
 *   must be set in the stack, else "Stack 'dev' is missing configuration
 *   values 'a' and 'b'", all at once;
 * - defaults are merged into the stack's config; primitives reach the
 *   program as strings (`%v`), lists and objects as JSON;
 * - each typed key's merged value is checked against its type (an integer
 *   may be a string that parses as one, which is how `pulumi stack init`
 *   and `pulumi config set` store it), and a `secret: true` key must be
 *   encrypted in the stack, which a default never is.
 *
 * `secure:` values cannot be decrypted offline; the key's stand-in is used
 * and it stays marked secret.
 */
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { CONFIG_KEYS, CONFIG_NAMESPACE, RawConfig } from "../lib/config";

interface ProjectConfigType {
    type?: string;
    items?: { type: string };
    default?: unknown;
    value?: unknown;
    secret?: boolean;
}

export type CliConfigResult = { ok: true; raw: RawConfig } | { ok: false; errors: string[] };

function isSecure(value: unknown): boolean {
    return !!value && typeof value === "object" && !Array.isArray(value) && "secure" in (value as object);
}

/** The CLI's ValidateConfigValue: the type check a typed project key imposes. */
export function matchesCliType(type: string, items: { type: string } | undefined, value: unknown): boolean {
    switch (type) {
        case "string":
            return typeof value === "string";
        case "integer":
            return (typeof value === "number" && Number.isInteger(value)) || (typeof value === "string" && /^[+-]?[0-9]+$/.test(value));
        case "boolean":
            return typeof value === "boolean" || value === "true" || value === "false";
        case "object":
            return !!value && typeof value === "object" && !Array.isArray(value);
        case "array":
            return Array.isArray(value) && items !== undefined && value.every((item) => matchesCliType(items.type, undefined, item));
        default:
            return false;
    }
}

function toProgramString(value: unknown): string {
    return typeof value === "string" || typeof value === "number" || typeof value === "boolean" ? String(value) : JSON.stringify(value);
}

function qualifiedKey(projectName: string, key: string): string {
    return key.includes(":") ? key : `${projectName}:${key}`;
}

function formatMissing(keys: string[]): string {
    const quoted = [...keys].sort().map((k) => `'${k}'`);
    return quoted.length === 1 ? quoted[0] : `${quoted.slice(0, -1).join(", ")} and ${quoted[quoted.length - 1]}`;
}

/** Project file checks the CLI runs when it loads Pulumi.yaml. */
export function projectConfigProblems(projectText: string): string[] {
    const project = (YAML.parse(projectText) ?? {}) as { name?: string; config?: Record<string, ProjectConfigType> };
    const problems: string[] = [];
    for (const [key, spec] of Object.entries(project.config ?? {})) {
        if (spec.default !== undefined && spec.value !== undefined) problems.push(`project config '${key}' cannot have both a 'default' and 'value' attribute`);
        if (spec.type === "array" && spec.items === undefined) problems.push(`The configuration key '${key}' declares an array but does not specify the underlying type via the 'items' attribute`);
        if (spec.type && spec.default !== undefined && !matchesCliType(spec.type, spec.items, spec.default)) {
            problems.push(`The default value specified for configuration key '${key}' is not of the expected type '${spec.type === "array" ? `array<${spec.items?.type}>` : spec.type}'`);
        }
    }
    return problems;
}

/** The config a program receives for `stackName`, or the errors with which the CLI stops before running it. */
export function cliStackConfig(projectText: string, stackText: string, stackName: string): CliConfigResult {
    const problems = projectConfigProblems(projectText);
    if (problems.length) return { ok: false, errors: problems };
    const project = YAML.parse(projectText) as { name: string; config?: Record<string, ProjectConfigType> };
    const stack = ((YAML.parse(stackText) ?? {}) as { config?: Record<string, unknown> }).config ?? {};

    const values: Record<string, string> = {};
    const secretKeys = new Set<string>();
    const merged: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(stack)) {
        merged[key] = value;
        if (isSecure(value)) {
            const [namespace, name] = key.split(":");
            const spec = namespace === CONFIG_NAMESPACE ? CONFIG_KEYS[name] : undefined;
            values[key] = spec?.offlineStandIn ?? "offline-plan-stand-in";
            secretKeys.add(key);
        } else {
            values[key] = toProgramString(value);
        }
    }

    const missing: string[] = [];
    for (const [key, spec] of Object.entries(project.config ?? {})) {
        const full = qualifiedKey(project.name, key);
        if (full in merged) continue;
        const fallback = spec.value ?? spec.default;
        if (fallback === undefined) {
            if (full.startsWith(`${project.name}:`)) missing.push(key);
            continue;
        }
        merged[full] = fallback;
        values[full] = toProgramString(fallback);
    }
    if (missing.length) {
        return { ok: false, errors: [`Stack '${stackName}' is missing configuration value${missing.length === 1 ? "" : "s"} ${formatMissing(missing)}`] };
    }

    const typeErrors: string[] = [];
    for (const [key, spec] of Object.entries(project.config ?? {})) {
        const full = qualifiedKey(project.name, key);
        const value = merged[full];
        if (spec.secret && !isSecure(value)) {
            typeErrors.push(`Stack '${stackName}' with configuration key '${key}' must be encrypted as it's secret`);
            continue;
        }
        // A secure value decrypts to a string; offline only its declared type can be assumed.
        if (spec.type && !isSecure(value) && !matchesCliType(spec.type, spec.items, value)) {
            typeErrors.push(`Stack '${stackName}' with configuration key '${key}' must be of type '${spec.type}'`);
        }
    }
    // The CLI reports the first of these; all of them are more useful offline.
    if (typeErrors.length) return { ok: false, errors: typeErrors };
    return { ok: true, raw: { values, secretKeys } };
}

/**
 * A stack file as `pulumi stack init` and `pulumi config set` write it back:
 * every scalar becomes a string (integers quoted), lists stay lists. The
 * program must read the rewritten file exactly as the committed one.
 */
export function asRewrittenByCli(stackText: string): string {
    const doc = (YAML.parse(stackText) ?? {}) as { config?: Record<string, unknown> };
    const config = Object.fromEntries(
        Object.entries(doc.config ?? {}).map(([key, value]) => [key, typeof value === "number" || typeof value === "boolean" ? String(value) : value]),
    );
    return YAML.stringify({ encryptionsalt: "v1:offline-stand-in-salt", config });
}

/** Pulumi.yaml and Pulumi.<stack>.yaml of a checkout, merged as the CLI does. */
export function cliStackConfigOf(repoRoot: string, stackName: string, stackFile = `Pulumi.${stackName}.yaml`): CliConfigResult {
    const read = (file: string) => fs.readFileSync(path.join(repoRoot, file), "utf8");
    return cliStackConfig(read("Pulumi.yaml"), read(stackFile), stackName);
}
