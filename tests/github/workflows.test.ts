/**
 * The wiring of the preview and sweep workflows, read from their YAML:
 * triggers, the label gate, stack names, the edited comment, destroy and
 * remove on close, credentials only from secrets, the policy pack on every
 * preview and up. actionlint (scripts/lint.sh) checks the syntax.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";

const WORKFLOWS = path.resolve(__dirname, "../../.github/workflows");
const LABEL = "preview-deploy";

interface Step { name?: string; uses?: string; run?: string; id?: string; if?: string; with?: Record<string, unknown>; env?: Record<string, string> }
interface Job { if?: string; permissions?: Record<string, string>; env?: Record<string, string>; steps: Step[] }
interface Workflow { on: Record<string, any>; permissions?: Record<string, string>; concurrency?: { group: string; "cancel-in-progress"?: boolean }; env?: Record<string, string>; jobs: Record<string, Job> }

function load(file: string): Workflow {
    return YAML.parse(fs.readFileSync(path.join(WORKFLOWS, file), "utf8"));
}

const pulumiSteps = (job: Job) => job.steps.filter((s) => s.uses?.startsWith("pulumi/actions@"));
const withCommand = (job: Job, command: string) => pulumiSteps(job).filter((s) => s.with?.command === command);
const stepIndex = (job: Job, match: (s: Step) => boolean) => job.steps.findIndex(match);

describe("workflows", () => {
    const preview = load("preview.yml");
    const sweep = load("sweep.yml");
    const all = fs.readdirSync(WORKFLOWS).filter((f) => /\.ya?ml$/.test(f)).map((f) => [f, load(f)] as const);

    describe("preview.yml", () => {
        const { deploy, destroy } = preview.jobs;
        const previewDev = preview.jobs["preview-dev"];

        it("runs on every PR event that changes what a preview should be", () => {
            assert.deepStrictEqual([...preview.on.pull_request.types].sort(), ["closed", "labeled", "opened", "reopened", "synchronize", "unlabeled"]);
        });

        it("runs one job per PR at a time and never cancels one half-way", () => {
            assert.match(preview.concurrency!.group, /github\.event\.pull_request\.number/);
            assert.strictEqual(preview.concurrency!["cancel-in-progress"], false);
        });

        it("deploys only PRs that carry the label, and previews dev for all others", () => {
            assert.match(deploy.if!, new RegExp(`contains\\(github\\.event\\.pull_request\\.labels\\.\\*\\.name, '${LABEL}'\\)`));
            assert.match(deploy.if!, new RegExp(`github\\.event\\.label\\.name == '${LABEL}'`));
            assert.match(previewDev.if!, new RegExp(`!contains\\(github\\.event\\.pull_request\\.labels\\.\\*\\.name, '${LABEL}'\\)`));
            for (const job of [deploy, previewDev, destroy]) assert.match(job.if!, /head\.repo\.full_name == github\.repository/, "forks get no secrets");
            assert.match(deploy.if!, /github\.event\.pull_request\.state == 'open'/, "labelling a closed PR deploys nothing");
        });

        it("deploys stack pr-<number> made from the template, creating it when missing", () => {
            assert.strictEqual(preview.env!.STACK, "pr-${{ github.event.pull_request.number }}");
            const [up] = withCommand(deploy, "up");
            assert.strictEqual(up.with!["stack-name"], "${{ env.STACK }}");
            assert.strictEqual(up.with!.upsert, true);
            const template = stepIndex(deploy, (s) => s.run === 'cp Pulumi.pr.yaml "Pulumi.$STACK.yaml"');
            assert.ok(template >= 0 && template < deploy.steps.indexOf(up), "the stack file exists before the first pulumi command");
        });

        it("tags the preview stack with the tags the plan derived (environment, PR), before the up", () => {
            const tagging = deploy.steps.findIndex((s) => s.run?.includes("pulumi stack tag set"));
            assert.match(deploy.steps[tagging].run!, /"out\/\$STACK\/stack-tags\.json"/);
            assert.ok(tagging > stepIndex(deploy, (s) => s.run?.includes("npm run plan -- --stack \"$STACK\"") === true));
            assert.ok(tagging < deploy.steps.indexOf(withCommand(deploy, "up")[0]));
        });

        it("keeps one comment per preview deployment, edited on every push", () => {
            const comment = deploy.steps.find((s) => s.run?.includes("scripts/prComment.ts"))!;
            assert.match(comment.run!, /--stack "\$STACK"/);
            assert.strictEqual(withCommand(deploy, "up")[0].with!["comment-on-pr"], false, "the outputs comment is the one comment");
            const [dev] = withCommand(previewDev, "preview");
            assert.strictEqual(dev.with!["stack-name"], "dev");
            assert.strictEqual(dev.with!["comment-on-pr"], true);
            assert.strictEqual(dev.with!["edit-pr-comment"], true);
            assert.strictEqual(dev.with!.diff, true);
        });

        it("may write PR comments only where it comments, and reads contents only", () => {
            assert.deepStrictEqual(preview.permissions, {});
            assert.deepStrictEqual(deploy.permissions, { contents: "read", "pull-requests": "write" });
            assert.deepStrictEqual(previewDev.permissions, { contents: "read", "pull-requests": "write" });
            assert.deepStrictEqual(destroy.permissions, { contents: "read" });
        });

        it("destroys and removes the stack when a labelled PR closes or loses the label", () => {
            assert.match(destroy.if!, /github\.event\.action == 'closed'/);
            assert.match(destroy.if!, new RegExp(`github\\.event\\.action == 'unlabeled' && github\\.event\\.label\\.name == '${LABEL}'`));
            const [step] = withCommand(destroy, "destroy");
            assert.strictEqual(step.with!["stack-name"], "${{ env.STACK }}");
            assert.strictEqual(step.with!.remove, true);
        });

        it("runs the policy pack on every preview and up", () => {
            const steps = [...withCommand(deploy, "up"), ...withCommand(previewDev, "preview")];
            assert.strictEqual(steps.length, 2);
            for (const s of steps) {
                assert.strictEqual(s.with!.policyPacks, "policy", s.name);
                assert.match(String(s.with!.policyPackConfigs), /^out\/(\$\{\{ env\.STACK \}\}|dev)\/policy-config\.json$/, "the stack's own pack config, from its plan");
            }
            for (const job of [deploy, previewDev]) assert.ok(job.steps.some((s) => s.run?.includes("npm ci --prefix policy")), "the pack's packages are installed");
        });
    });

    describe("sweep.yml", () => {
        const job = sweep.jobs.sweep;
        it("runs on a schedule and by hand", () => {
            assert.ok(sweep.on.schedule[0].cron);
            assert.ok("workflow_dispatch" in sweep.on);
        });
        it("acts on schedule, and by hand only when asked", () => {
            assert.strictEqual(job.env!.SWEEP_ACT, "${{ github.event_name == 'schedule' || inputs.act }}");
            const run = job.steps.find((s) => s.run?.includes("npm run sweep"))!.run!;
            assert.match(run, /if \[ "\$SWEEP_ACT" = "true" \]; then args\+=\(--yes\); fi/);
        });
        it("reads PRs and contents only", () => {
            assert.deepStrictEqual(job.permissions, { contents: "read", "pull-requests": "read" });
        });
    });

    describe("every workflow", () => {
        const CREDENTIAL = /TOKEN|PASSPHRASE|SECRET|PASSWORD|_KEY|BACKEND_URL/;
        for (const [file, workflow] of all) {
            const envs = [workflow.env ?? {}, ...Object.values(workflow.jobs).flatMap((j) => [j.env ?? {}, ...j.steps.map((s) => s.env ?? {})])];
            const steps = Object.values(workflow.jobs).flatMap((j) => j.steps);

            it(`${file}: takes credentials only from repository secrets`, () => {
                for (const env of envs) {
                    for (const [name, value] of Object.entries(env)) {
                        if (CREDENTIAL.test(name)) assert.match(String(value), /^\$\{\{ secrets\.[A-Z_]+ \}\}$/, `${name} in ${file}`);
                    }
                }
                for (const s of steps) {
                    for (const [input, value] of Object.entries(s.with ?? {})) {
                        if (/token|secret|passphrase|password/i.test(input)) assert.match(String(value), /^\$\{\{ secrets\.[A-Z_]+ \}\}$/, `${input} of ${s.name ?? s.uses}`);
                    }
                    assert.ok(!s.run?.includes("secrets."), `a secret is interpolated into the script of ${s.name}; pass it through env`);
                }
            });

            it(`${file}: uses pulumi/actions v7`, () => {
                for (const s of steps.filter((x) => x.uses?.startsWith("pulumi/actions"))) assert.strictEqual(s.uses, "pulumi/actions@v7");
            });

            it(`${file}: declares its permissions`, () => {
                assert.ok(workflow.permissions !== undefined, "a workflow without permissions gets the repository's defaults");
            });
        }
    });
});
