import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { asRewrittenByCli, cliStackConfig, cliStackConfigOf, projectConfigProblems } from "../../tooling/cliConfig";
import { formatConfigErrors, parseStackConfig, StackConfig } from "../../lib/config";

const REPO_ROOT = path.resolve(__dirname, "../..");
const PROJECT = fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8");
const committedStacks = fs.readdirSync(REPO_ROOT).filter((f) => /^Pulumi\.[A-Za-z0-9_.-]+\.yaml$/.test(f));

function programConfig(projectText: string, stackText: string): StackConfig {
    const cli = cliStackConfig(projectText, stackText, "dev");
    if (!cli.ok) assert.fail(cli.errors.join("\n"));
    const parsed = parseStackConfig(cli.raw);
    if (!parsed.ok) assert.fail(formatConfigErrors(parsed.errors));
    return parsed.value;
}

describe("the Pulumi CLI's config rules", () => {
    it("refuses a stack that lacks keys declared without a default, naming them all", () => {
        const project = "name: p\nruntime: nodejs\nconfig:\n  another:\n    type: string\n  values:\n    type: array\n    items:\n      type: string\n";
        const cli = cliStackConfig(project, "config: {}\n", "dev");
        assert.ok(!cli.ok);
        assert.deepStrictEqual(cli.errors, ["Stack 'dev' is missing configuration values 'another' and 'values'"]);
    });

    it("refuses a secret key that a stack does not set encrypted, even with a default", () => {
        const project = "name: p\nruntime: nodejs\nconfig:\n  token:\n    type: string\n    default: \"\"\n    secret: true\n";
        const cli = cliStackConfig(project, "config: {}\n", "dev");
        assert.ok(!cli.ok);
        assert.match(cli.errors[0], /'token' must be encrypted as it's secret/);
    });

    it("refuses a default of the wrong type and an array without items", () => {
        const problems = projectConfigProblems("name: p\nruntime: nodejs\nconfig:\n  n:\n    type: integer\n    default: three\n  l:\n    type: array\n");
        assert.strictEqual(problems.length, 2);
    });

    it("merges project defaults into what the program sees, as strings and JSON", () => {
        const cli = cliStackConfig(PROJECT, "config: {}\n", "dev");
        assert.ok(cli.ok);
        assert.strictEqual(cli.raw.values["meshstack:natsNodeCount"], "3");
        assert.strictEqual(cli.raw.values["meshstack:natsClientCidrs"], "[]");
        assert.strictEqual(cli.raw.values["meshstack:natsDnsDomain"], "");
    });

    it("accepts Pulumi.yaml itself: defaults of the declared types", () => {
        assert.deepStrictEqual(projectConfigProblems(PROJECT), []);
    });

    it("accepts a stack that sets nothing: every key has a default", () => {
        const config = programConfig(PROJECT, "config: {}\n");
        assert.strictEqual(config.nats.nodeCount, 3);
        assert.strictEqual(config.nats.dnsDomain, undefined);
    });

    for (const file of committedStacks) {
        it(`passes the CLI's checks for ${file}: every declared key without a default is set`, () => {
            const stack = file.slice("Pulumi.".length, -".yaml".length);
            const cli = cliStackConfigOf(REPO_ROOT, stack, file);
            assert.ok(cli.ok, cli.ok ? "" : cli.errors.join("\n"));
        });

        it(`reads ${file} the same after \`pulumi stack init\` rewrites it (quoted integers, booleans as strings)`, () => {
            const text = fs.readFileSync(path.join(REPO_ROOT, file), "utf8");
            const rewritten = asRewrittenByCli(text);
            assert.match(rewritten, /encryptionsalt/);
            assert.deepStrictEqual(programConfig(PROJECT, rewritten), programConfig(PROJECT, text));
        });
    }

    it("reads what `pulumi config set --path` writes for list items", () => {
        const config = programConfig(PROJECT, "config:\n  meshstack:breakGlassSshCidrs:\n    - 203.0.113.7/32\n    - 2001:db8::/48\n  meshstack:natsNodeCount: \"5\"\n");
        assert.deepStrictEqual(config.access.breakGlassSshCidrs, ["203.0.113.7/32", "2001:db8::/48"]);
        assert.strictEqual(config.nats.nodeCount, 5);
    });

    it("refuses a value the CLI cannot read as the declared type", () => {
        const cli = cliStackConfig(PROJECT, "config:\n  meshstack:natsNodeCount: three\n", "dev");
        assert.ok(!cli.ok);
        assert.match(cli.errors[0], /'natsNodeCount' must be of type 'integer'/);
    });

    it("keeps a secure value secret and hands the program its offline stand-in", () => {
        const cli = cliStackConfig(PROJECT, "config:\n  meshstack:natsClientCaKeyPem:\n    secure: v1:AAAA\n", "dev");
        assert.ok(cli.ok);
        assert.ok(cli.raw.secretKeys.has("meshstack:natsClientCaKeyPem"));
        assert.match(cli.raw.values["meshstack:natsClientCaKeyPem"], /offline plan stand-in/);
    });
});
