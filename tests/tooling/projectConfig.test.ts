import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { CONFIG_KEYS, KeySpec } from "../../lib/config";
import { projectConfigProblems } from "../../tooling/cliConfig";
import { configBlock, withGeneratedConfig } from "../../tooling/projectConfig";

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const COMMITTED = fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8");

type Declared = Record<string, { type: string; items?: { type: string }; default?: unknown; secret?: boolean; description?: string }>;

function declaredConfig(text: string): Declared {
    return (YAML.parse(text) as { config: Declared }).config;
}

function key(spec: Partial<KeySpec>): KeySpec {
    return { type: "string", description: "A key.", allowed: "anything", ...spec };
}

describe("Pulumi.yaml's config block, generated from lib/config/", () => {
    it("is committed as `npm run gen:config` writes it", () => {
        assert.strictEqual(COMMITTED, withGeneratedConfig(COMMITTED), "Pulumi.yaml differs from the key table in lib/config/: run `npm run gen:config` and commit Pulumi.yaml");
    });

    it("declares exactly the table's keys, types and defaults, none secret, each description stating what is allowed", () => {
        for (const [what, text] of [["generated", withGeneratedConfig(COMMITTED)], ["committed", COMMITTED]]) {
            const config = declaredConfig(text);
            assert.deepStrictEqual(Object.keys(config).sort(), Object.keys(CONFIG_KEYS).sort(), what);
            for (const [name, spec] of Object.entries(CONFIG_KEYS)) {
                const declared = config[name];
                assert.strictEqual(declared.type, spec.type, `type of ${name} (${what})`);
                assert.deepStrictEqual(declared.default, spec.default ?? (spec.optional ? "" : undefined), `default of ${name} (${what})`);
                assert.strictEqual(declared.secret, undefined, `${name}: a secret key in Pulumi.yaml is required in every stack; lib/config/ enforces secrecy (${what})`);
                assert.ok(declared.description?.includes(spec.allowed), `description of ${name} states what is allowed (${what})`);
            }
        }
    });

    it("passes the Pulumi CLI's project checks: every default of its declared type, every list with items", () => {
        assert.deepStrictEqual(projectConfigProblems(withGeneratedConfig(COMMITTED)), []);
    });

    it("keeps the hand-written head of the file and replaces the comment above config: with its own", () => {
        const project = "name: p\nmain: index.ts\n# an old comment\n# on two lines\nconfig:\n  old:\n    type: string\n";
        const sections = [{ keys: { region: key({ default: "us-east" }) } }];
        assert.strictEqual(withGeneratedConfig(project, sections), `name: p\nmain: index.ts\n${configBlock(sections)}`);
        assert.match(configBlock(sections), /^# Every meshstack:\* key.*\n(# .*\n)+config:\n {2}region:\n/);
    });

    it("refuses a file whose config: is missing or followed by another top-level key, which the generated block would drop", () => {
        assert.throws(() => withGeneratedConfig("name: p\n"), /no top-level config: line/);
        assert.throws(() => withGeneratedConfig("name: p\nconfig:\n  a:\n    type: string\nmain: index.ts\n"), /config: must be its last top-level key, but "main: index.ts" follows it/);
    });

    it("writes each key's type, items, default and description, and a section's comment above its keys", () => {
        const block = configBlock([
            { keys: { plain: key({ default: "g6-nanode-1" }) } },
            {
                comment: ["Why these keys."],
                keys: {
                    list: key({ type: "array", default: ["a b", "c"], description: "A \"list\".", allowed: "strings" }),
                    count: key({ type: "integer", default: 3 }),
                    flag: key({ type: "boolean", default: false }),
                },
            },
        ]);
        assert.strictEqual(block.slice(block.indexOf("config:\n")), [
            "config:",
            "  plain:", "    type: string", "    default: g6-nanode-1", "    description: \"A key. Allowed: anything.\"",
            "  # Why these keys.",
            "  list:", "    type: array", "    items:", "      type: string", "    default: [\"a b\",\"c\"]", "    description: \"A \\\"list\\\". Allowed: strings.\"",
            "  count:", "    type: integer", "    default: 3", "    description: \"A key. Allowed: anything.\"",
            "  flag:", "    type: boolean", "    default: false", "    description: \"A key. Allowed: anything.\"",
            "",
        ].join("\n"));
    });

    it("declares an optional key without a default as \"\", and a required key without any default, so the CLI requires it", () => {
        const config = declaredConfig(configBlock([{ keys: { optional: key({ optional: true }), required: key({}) } }]));
        assert.strictEqual(config.optional.default, "");
        assert.ok(!("default" in config.required));
    });

    it("quotes a string default YAML would read as something else, and every hex digest", () => {
        const defaults = ["", "1e5", "0x1F", "true", "null", "12", "e5c20b1c", "https://example.net/{arch}", "a b", "us-east", "bootstrap/", "10.44.0.1/24", "local"];
        const block = configBlock([{ keys: Object.fromEntries(defaults.map((value, i) => [`k${i}`, key({ default: value })])) }]);
        const written = [...block.matchAll(/^ {4}default: (.*)$/gm)].map((m) => m[1]);
        assert.deepStrictEqual(written, ["\"\"", "\"1e5\"", "\"0x1F\"", "\"true\"", "\"null\"", "\"12\"", "\"e5c20b1c\"", "\"https://example.net/{arch}\"", "\"a b\"", "us-east", "bootstrap/", "10.44.0.1/24", "local"]);
        const config = declaredConfig(block);
        defaults.forEach((value, i) => assert.strictEqual(config[`k${i}`].default, value, `k${i} reads back as ${JSON.stringify(value)}`));
    });
});
