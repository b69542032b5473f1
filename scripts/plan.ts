/**
 * The offline plan (dry run): runs the real program under the mock cloud
 * with a stack's config file. No Pulumi CLI, no credentials, no network.
 *
 *   npm run plan -- --stack dev
 *
 * Writes out/<stack>/: resources.json (type, name, parent, dependencies,
 * inputs with secrets redacted), artifacts/ (every rendered file),
 * topology.mmd (Mermaid), cost.json (monthly cost from tooling/linodePrices.ts),
 * policy.json (the policy pack's rules over every resource), policy-config.json
 * (the pack's config for this stack, for --policy-pack-config) and
 * stack-tags.json (what `pulumi stack tag set` gives the stack). A preview
 * stack `pr-<n>` without a file of its own reads the template Pulumi.pr.yaml.
 * Invalid config or a policy violation exits 1 with the report.
 */
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { formatConfigWarnings } from "../lib/config";
import { checkStackFile } from "../tooling/cliConfig";
import { formatCostTable, stackCost } from "../tooling/cost";
import { environmentOf, stackFileName, stackTags } from "../lib/environments";
import { startMockCloud, unwrapSecrets } from "../tooling/mockCloud";
import { extractArtifacts, policyResources, redactInputs, topologyMermaid, withOfflineS3Credentials } from "../tooling/plan";
import { packConfigFile, policyConfigForStack, runPolicies } from "../policy/rules";

const REPO_ROOT = path.resolve(__dirname, "..");

function stackArgument(argv: string[]): string {
    const index = argv.indexOf("--stack");
    const stack = index >= 0 ? argv[index + 1] : "dev";
    if (!stack || !/^[A-Za-z0-9_.-]+$/.test(stack)) {
        throw new Error(`--stack needs a stack name (letters, digits, . _ -); got ${JSON.stringify(stack)}`);
    }
    return stack;
}

async function main(): Promise<number> {
    const started = process.hrtime.bigint();
    const stack = stackArgument(process.argv.slice(2));
    const stackFile = path.join(REPO_ROOT, stackFileName(stack, (file) => fs.existsSync(path.join(REPO_ROOT, file))));
    if (!fs.existsSync(stackFile)) {
        console.error(`no stack file ${path.relative(REPO_ROOT, stackFile)}; create it or pass --stack NAME`);
        return 1;
    }
    const project = (YAML.parse(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8")) as { name: string }).name;
    const stackCheck = checkStackFile(REPO_ROOT, stack, path.basename(stackFile));
    if (!stackCheck.ok) {
        console.error(stackCheck.report);
        return 1;
    }
    const { raw, config } = stackCheck;
    if (stackCheck.warnings.length) console.error(`${path.basename(stackFile)}: ${formatConfigWarnings(stackCheck.warnings)}`);
    if (config.objectStore.kind === "s3") withOfflineS3Credentials(process.env);

    const cloud = await startMockCloud({ project, stack, config: raw.values, secretKeys: [...raw.secretKeys], preview: true });
    const outputs = await cloud.runProgram(() => ({ ...require(path.join(REPO_ROOT, "index.ts")) }));

    const outDir = path.join(REPO_ROOT, "out", stack);
    fs.rmSync(outDir, { recursive: true, force: true });
    fs.mkdirSync(path.join(outDir, "artifacts"), { recursive: true });
    const resources = cloud.resources.map((r) => ({
        type: r.type,
        name: r.name,
        parent: r.parent ?? null,
        dependencies: [...r.dependencies].sort(),
        inputs: redactInputs(r.inputs),
    }));
    fs.writeFileSync(path.join(outDir, "resources.json"), JSON.stringify(resources, null, 2) + "\n");
    fs.writeFileSync(path.join(outDir, "outputs.json"), JSON.stringify(redactInputs(outputs), null, 2) + "\n");
    const artifacts = extractArtifacts(cloud.resources);
    for (const artifact of artifacts) {
        const file = path.join(outDir, "artifacts", artifact.path);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, artifact.content);
    }
    fs.writeFileSync(path.join(outDir, "topology.mmd"), topologyMermaid(cloud.resources));
    const cost = stackCost(stack, cloud.resources.map((r) => ({ type: r.type, inputs: unwrapSecrets(r.inputs) })));
    fs.writeFileSync(path.join(outDir, "cost.json"), JSON.stringify(cost, null, 2) + "\n");
    const checked = policyResources(project, stack, cloud.resources);
    const policyConfig = policyConfigForStack({ wireguardPort: config.wgCache.listenPort, natsClientCidrs: config.nats.clientCidrs });
    const { violations, skipped } = runPolicies(checked, policyConfig);
    fs.writeFileSync(path.join(outDir, "policy-config.json"), JSON.stringify(packConfigFile(policyConfig), null, 2) + "\n");
    fs.writeFileSync(path.join(outDir, "stack-tags.json"), JSON.stringify(stackTags(environmentOf(stack)), null, 2) + "\n");
    fs.writeFileSync(path.join(outDir, "policy.json"), JSON.stringify({ checked: checked.length, violations, skipped }, null, 2) + "\n");

    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    const custom = cloud.resources.filter((r) => r.custom).length;
    const components = cloud.resources.length - custom;
    console.log(`offline plan of stack ${stack}: ${custom} resources in ${components} component${components === 1 ? "" : "s"}, ${artifacts.length} artifacts`);
    if (stackFile !== path.join(REPO_ROOT, `Pulumi.${stack}.yaml`)) console.log(`config from the preview template ${path.basename(stackFile)}`);
    console.log(`wrote ${path.relative(REPO_ROOT, outDir)}/ (resources.json, outputs.json, artifacts/, topology.mmd, cost.json, policy.json, policy-config.json, stack-tags.json) in ${elapsedMs.toFixed(0)} ms`);
    console.log("");
    console.log(formatCostTable(cost));
    if (violations.length) {
        console.error(`policy: ${violations.length} violation${violations.length === 1 ? "" : "s"}:`);
        for (const v of violations) console.error(`  - ${v.policy}: ${v.resource}: ${v.message}`);
        return 1;
    }
    // The real runtime skips a rule that reads a value not known yet; say so rather than count it as passed.
    const skippedNote = skipped.length ? ` (${skipped.length} rule run${skipped.length === 1 ? "" : "s"} skipped on values not known until up, as the policy runtime skips them)` : "";
    console.log(`policy: every rule of policy/ passes on all ${checked.length} resources${skippedNote}`);
    return 0;
}

main().then(
    (code) => process.exit(code),
    (err: Error) => {
        // A refused registration reaches here wrapped once per output it fed; the refusal is what matters.
        console.error(err.message.replace(/^(error serializing property "[^"]*": )+/, ""));
        process.exit(1);
    },
);
