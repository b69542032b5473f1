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
import { CONFIG_KEYS, CONFIG_NAMESPACE, ConfigError, ConfigWarning, formatConfigErrors, parseStackConfig, RawConfig, shownValue, StackConfig } from "../lib/config";
import { redactPrivateKeys } from "../lib/secretText";

interface ProjectConfigType {
    type?: string;
    items?: { type: string };
    default?: unknown;
    value?: unknown;
    secret?: boolean;
}

/** A merged value the CLI refuses for its declared type: the stack's own rules can still run on the rest. */
export interface CliTypeProblem {
    /** Fully qualified key. */
    key: string;
    value: string;
    type: string;
}

/**
 * On type errors alone the merged config is still returned (`raw`), so the
 * offline plan reports them together with every other problem instead of
 * letting the first type error hide the rest.
 */
export type CliConfigResult = { ok: true; raw: RawConfig } | { ok: false; errors: string[]; raw?: RawConfig; typeProblems?: CliTypeProblem[] };

/** The names under which the CLI reads the two files, for messages. */
export interface ConfigFileNames {
    project: string;
    stack: string;
}

/** A YAML file as an object, or the error naming the file, line and column (private keys in the quoted line redacted). */
function parseYamlFile(text: string, file: string): { doc?: Record<string, unknown>; error?: string } {
    let doc: unknown;
    try {
        doc = YAML.parse(text);
    } catch (err) {
        return { error: `${file}: not valid YAML: ${redactPrivateKeys((err as Error).message.trim())}` };
    }
    if (doc === null || doc === undefined) return { doc: {} };
    if (typeof doc !== "object" || Array.isArray(doc)) return { error: `${file}: not valid as a Pulumi config file: its top level must be a map (name:, config:, ...)` };
    const config = (doc as Record<string, unknown>).config;
    if (config !== undefined && config !== null && (typeof config !== "object" || Array.isArray(config))) {
        return { error: `${file}: not valid as a Pulumi config file: config: must be a map of key: value` };
    }
    return { doc: doc as Record<string, unknown> };
}

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
export function cliStackConfig(projectText: string, stackText: string, stackName: string, files?: ConfigFileNames): CliConfigResult {
    const names = files ?? { project: "Pulumi.yaml", stack: `Pulumi.${stackName}.yaml` };
    const projectFile = parseYamlFile(projectText, names.project);
    const stackFile = parseYamlFile(stackText, names.stack);
    const unreadable = [projectFile.error, stackFile.error].filter((e): e is string => e !== undefined);
    if (unreadable.length) return { ok: false, errors: unreadable };
    const problems = projectConfigProblems(projectText);
    if (problems.length) return { ok: false, errors: problems };
    const project = projectFile.doc as { name: string; config?: Record<string, ProjectConfigType> };
    const stack = ((stackFile.doc as { config?: Record<string, unknown> | null }).config ?? {}) as Record<string, unknown>;

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
    const typeProblems: CliTypeProblem[] = [];
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
            typeProblems.push({ key: full, value: values[full], type: spec.type === "array" ? `array<${spec.items?.type}>` : spec.type });
        }
    }
    // The CLI reports the first of these; all of them are more useful offline.
    if (typeErrors.length) return { ok: false, errors: typeErrors, raw: { values, secretKeys }, typeProblems };
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
    return cliStackConfig(read("Pulumi.yaml"), read(stackFile), stackName, { project: "Pulumi.yaml", stack: stackFile });
}

export type StackConfigCheck =
    | { ok: true; raw: RawConfig; config: StackConfig; warnings: ConfigWarning[] }
    | { ok: false; report: string; warnings: ConfigWarning[] };

/**
 * Everything the offline plan refuses in a stack, in one report: the CLI's
 * own checks and the stack's rules (lib/config/) together. A value of the
 * wrong type is one problem among the others, named by key, value and what
 * is allowed; only a file that cannot be read at all stops the check early.
 */
export function checkStackConfig(cli: CliConfigResult, stackName: string, stackFile: string): StackConfigCheck {
    if (!cli.ok && cli.raw === undefined) {
        // A file that cannot be read is named by its own error; the CLI's other refusals by the stack file.
        const named = cli.errors.every((e) => /^\S+\.yaml: /.test(e));
        return { ok: false, report: named ? cli.errors.join("\n") : `${stackFile}: the Pulumi CLI would refuse this stack:\n${cli.errors.map((e) => `  - ${e}`).join("\n")}`, warnings: [] };
    }
    const raw = cli.raw!;
    const parsed = parseStackConfig(raw, stackName);
    if (cli.ok && parsed.ok) return { ok: true, raw, config: parsed.value, warnings: parsed.warnings };
    const ruleErrors = parsed.ok ? [] : parsed.errors;
    // A key the stack's rules already named (with its value and what is allowed) is not named twice.
    const cliErrors: ConfigError[] = (cli.ok ? [] : cli.typeProblems ?? [])
        .filter((p) => !ruleErrors.some((e) => e.key === p.key))
        .map((p) => {
            const name = p.key.startsWith(`${CONFIG_NAMESPACE}:`) ? p.key.slice(CONFIG_NAMESPACE.length + 1) : undefined;
            const allowed = name && CONFIG_KEYS[name] ? CONFIG_KEYS[name].allowed : `a value of type ${p.type}`;
            return { key: p.key, value: shownValue(p.key, p.value), message: `is not of type ${p.type}, as Pulumi.yaml declares it, so the Pulumi CLI refuses the stack before the program runs (quote it if it is meant as text); allowed: ${allowed}` };
        });
    return { ok: false, report: `${stackFile}: ${formatConfigErrors([...cliErrors, ...ruleErrors], parsed.warnings)}`, warnings: parsed.warnings };
}

/** Pulumi.yaml and a stack file of a checkout, checked as the offline plan checks them. */
export function checkStackFile(repoRoot: string, stackName: string, stackFile = `Pulumi.${stackName}.yaml`): StackConfigCheck {
    return checkStackConfig(cliStackConfigOf(repoRoot, stackName, stackFile), stackName, stackFile);
}

/** A stack file's text checked against Pulumi.yaml's text: what a test of one bad stack file needs. */
export function checkStackText(projectText: string, stackText: string, stackName: string, stackFile = `Pulumi.${stackName}.yaml`): StackConfigCheck {
    return checkStackConfig(cliStackConfig(projectText, stackText, stackName, { project: "Pulumi.yaml", stack: stackFile }), stackName, stackFile);
}
