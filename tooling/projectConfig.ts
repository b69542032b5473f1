/**
 * Pulumi.yaml's `config:` block, written from the key table in lib/config/
 * (`npm run gen:config`): the table is the one home of every key's type,
 * default and description, and the CLI's copy follows it instead of being
 * kept equal by hand.
 */
import * as YAML from "yaml";
import { CONFIG_NAMESPACE, CONFIG_SECTIONS, ConfigSection, KeySpec } from "../lib/config";

const HEADER = [
    `Every ${CONFIG_NAMESPACE}:* key, typed, with its default, so a stack file holds only`,
    "what differs. The Pulumi CLI refuses a stack that lacks a key declared",
    "without a default, so every key has one; \"\" means unset for the optional",
    "ones. Generated from the key table in lib/config/ by `npm run gen:config`:",
    "edit the table, not this block (tests/tooling/projectConfig.test.ts fails",
    "when they differ). No key is `secret: true` here: the CLI would then",
    "require it in every stack. lib/config/ refuses a secret key set in plain text.",
];

/**
 * A string default as YAML text. Plain only when it is made of id characters
 * and YAML reads it back as the same string; a hex digest is quoted even
 * then: it is plain YAML only by the luck of its letters, and one made of
 * digits and a single e reads as a number.
 */
function yamlString(value: string): string {
    const plain = /^[A-Za-z0-9][A-Za-z0-9./-]*$/.test(value) && !/^[0-9a-f]+$/i.test(value) && YAML.parse(value) === value;
    return plain ? value : JSON.stringify(value);
}

function yamlDefault(value: string | number | boolean | string[]): string {
    if (typeof value === "string") return yamlString(value);
    return Array.isArray(value) ? JSON.stringify(value) : String(value);
}

/**
 * One key's declaration. An optional key without a default is declared with
 * `default: ""`; a key with neither is declared without one, which makes the
 * CLI require it in every stack.
 */
function keyLines(name: string, spec: KeySpec): string[] {
    const fallback = spec.default ?? (spec.optional ? "" : undefined);
    return [
        `  ${name}:`,
        `    type: ${spec.type}`,
        ...(spec.type === "array" ? ["    items:", "      type: string"] : []),
        ...(fallback !== undefined ? [`    default: ${yamlDefault(fallback)}`] : []),
        `    description: ${JSON.stringify(`${spec.description} Allowed: ${spec.allowed}.`)}`,
    ];
}

/** The generated part of Pulumi.yaml: its header comment and the `config:` block. */
export function configBlock(sections: readonly ConfigSection[] = CONFIG_SECTIONS): string {
    const lines = [
        ...HEADER.map((line) => `# ${line}`),
        "config:",
        ...sections.flatMap((section) => [
            ...(section.comment ?? []).map((line) => `  # ${line}`),
            ...Object.entries(section.keys).flatMap(([name, spec]) => keyLines(name, spec)),
        ]),
    ];
    return `${lines.join("\n")}\n`;
}

/**
 * The project file with its generated part replaced: everything from the
 * comment right above `config:` to the end. The part above (name, runtime,
 * main) stays as written; `config:` must be the last top-level key, so
 * nothing below it is lost.
 */
export function withGeneratedConfig(projectText: string, sections: readonly ConfigSection[] = CONFIG_SECTIONS): string {
    const lines = projectText.split("\n");
    let start = lines.indexOf("config:");
    if (start < 0) throw new Error("Pulumi.yaml has no top-level config: line to generate");
    const after = lines.slice(start + 1).find((line) => /^[^\s#]/.test(line));
    if (after !== undefined) throw new Error(`Pulumi.yaml: config: must be its last top-level key, but ${JSON.stringify(after)} follows it`);
    while (start > 0 && lines[start - 1].startsWith("#")) start--;
    return `${lines.slice(0, start).join("\n")}\n${configBlock(sections)}`;
}
