/**
 * The preview sweeper. Dry run by default: prints what it would destroy and
 * delete, and why; `--yes` acts.
 *
 *   npm run sweep                              # dry run
 *   npm run sweep -- --yes --max-age-hours 48  # act
 *   npm run sweep -- --inventory recorded.json # decide on a recorded inventory, no network
 *
 * Live, it reads `pulumi stack ls --json` (run from the repository, logged in
 * to the state backend), each preview's PR state from GitHub
 * (GITHUB_TOKEN, GITHUB_REPOSITORY or --repo owner/name), and the account's
 * instances, firewalls, buckets and object storage keys from the Linode API
 * (LINODE_TOKEN). `--record FILE` writes that inventory for later.
 * The decisions are tooling/sweep.ts's.
 */
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import * as YAML from "yaml";
import { environmentOf, PREVIEW_TEMPLATE_STACK } from "../lib/environments";
import {
    applySweep, DEFAULT_SWEEP_SETTINGS, describeAction, LinodeResource, linodeResourcesFrom, planSweep, previewPrOf, PullRequestState,
    shortStackName, StackListEntry, SweepExecutor, SweepInventory, SweepSettings,
} from "../tooling/sweep";

const run = promisify(execFile);
const REPO_ROOT = path.resolve(__dirname, "..");
const LINODE_API = "https://api.linode.com/v4";
const GITHUB_API = "https://api.github.com";
/** Every network call has its own deadline: a hung API never hangs the schedule. */
const REQUEST_TIMEOUT_MS = 30_000;

interface Options {
    yes: boolean;
    settings: SweepSettings;
    repo?: string;
    inventoryFile?: string;
    recordFile?: string;
}

function parseArgs(argv: string[], env: NodeJS.ProcessEnv, project: string): Options {
    const value = (flag: string) => {
        const i = argv.indexOf(flag);
        return i >= 0 ? argv[i + 1] : undefined;
    };
    const hours = (flag: string, fallback: number) => {
        const text = value(flag);
        if (text === undefined) return fallback;
        const n = Number(text);
        if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} needs a positive number of hours; got ${JSON.stringify(text)}`);
        return n;
    };
    const known = new Set(["--yes", "--max-age-hours", "--grace-hours", "--repo", "--inventory", "--record"]);
    const unknown = argv.filter((a) => a.startsWith("--") && !known.has(a));
    if (unknown.length) throw new Error(`unknown option ${unknown.join(", ")}; allowed: ${[...known].join(", ")}`);
    if (argv.includes("--yes") && value("--inventory") !== undefined) throw new Error("--yes acts on the live account; it cannot be combined with --inventory");
    return {
        yes: argv.includes("--yes"),
        settings: {
            project,
            maxAgeHours: hours("--max-age-hours", Number(env.SWEEP_MAX_AGE_HOURS ?? DEFAULT_SWEEP_SETTINGS.maxAgeHours)),
            orphanGraceHours: hours("--grace-hours", DEFAULT_SWEEP_SETTINGS.orphanGraceHours),
        },
        repo: value("--repo") ?? env.GITHUB_REPOSITORY,
        inventoryFile: value("--inventory"),
        recordFile: value("--record"),
    };
}

async function request(url: string, init: RequestInit & { token: string }): Promise<Response> {
    return fetch(url, { ...init, headers: { Authorization: `Bearer ${init.token}`, Accept: "application/json", ...(init.headers ?? {}) }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
}

async function linodeList<T>(token: string, resource: string): Promise<T[]> {
    const items: T[] = [];
    for (let page = 1, pages = 1; page <= pages; page++) {
        const response = await request(`${LINODE_API}/${resource}?page=${page}&page_size=500`, { token });
        if (!response.ok) throw new Error(`GET /${resource}: HTTP ${response.status} ${await response.text()}`);
        const body = (await response.json()) as { data: T[]; pages: number };
        items.push(...body.data);
        pages = body.pages;
    }
    return items;
}

async function pullState(token: string, repo: string, number: number): Promise<PullRequestState> {
    const response = await request(`${GITHUB_API}/repos/${repo}/pulls/${number}`, { token, headers: { "X-GitHub-Api-Version": "2022-11-28" } });
    if (response.status === 404) return { number, state: "missing" };
    if (!response.ok) throw new Error(`GitHub PR #${number}: HTTP ${response.status}`);
    const body = (await response.json()) as { state: string };
    return { number, state: body.state === "open" ? "open" : "closed" };
}

function requireEnv(env: NodeJS.ProcessEnv, name: string, why: string): string {
    const value = env[name];
    if (!value) throw new Error(`${name} must be set (${why})`);
    return value;
}

async function liveInventory(options: Options, env: NodeJS.ProcessEnv): Promise<SweepInventory & { linode: unknown }> {
    const linodeToken = requireEnv(env, "LINODE_TOKEN", "a Linode API token that can list and delete instances, firewalls and Object Storage");
    const githubToken = requireEnv(env, "GITHUB_TOKEN", "to read each preview's pull request state");
    if (!options.repo) throw new Error("GITHUB_REPOSITORY or --repo owner/name must name the repository the previews belong to");
    const now = new Date().toISOString();
    const { stdout } = await run("pulumi", ["stack", "ls", "--json"], { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 });
    const stacks = JSON.parse(stdout) as StackListEntry[];
    const linode = {
        instances: await linodeList<{ id: number; label: string; tags: string[]; created: string }>(linodeToken, "linode/instances"),
        firewalls: await linodeList<{ id: number; label: string; tags: string[]; created: string }>(linodeToken, "networking/firewalls"),
        buckets: await linodeList<{ label: string; region: string; created: string }>(linodeToken, "object-storage/buckets"),
        keys: (await linodeList<{ id: number; label: string }>(linodeToken, "object-storage/keys")).map(({ id, label }) => ({ id, label })),
    };
    const resources = linodeResourcesFrom(linode);
    const prNumbers = new Set<number>();
    for (const s of stacks) {
        const pr = environmentOf(shortStackName(s.name)).prNumber;
        if (pr !== undefined) prNumbers.add(pr);
    }
    for (const r of resources) {
        const pr = previewPrOf(r, options.settings.project);
        if (pr !== undefined) prNumbers.add(pr);
    }
    const pulls: PullRequestState[] = [];
    for (const pr of [...prNumbers].sort((a, b) => a - b)) pulls.push(await pullState(githubToken, options.repo, pr));
    return { now, stacks, pulls, resources, linode };
}

function recordedInventory(file: string): SweepInventory {
    const recorded = JSON.parse(fs.readFileSync(file, "utf8"));
    return { now: recorded.now, stacks: recorded.stacks, pulls: recorded.pulls, resources: linodeResourcesFrom(recorded.linode ?? {}) };
}

function liveExecutor(env: NodeJS.ProcessEnv): SweepExecutor {
    const token = requireEnv(env, "LINODE_TOKEN", "to delete orphaned resources");
    const endpoint: Record<LinodeResource["kind"], (id: string) => string> = {
        instance: (id) => `linode/instances/${id}`,
        firewall: (id) => `networking/firewalls/${id}`,
        bucket: (id) => `object-storage/buckets/${id}`,
        "object-storage-key": (id) => `object-storage/keys/${id}`,
    };
    return {
        async destroyStack(stack) {
            // A preview's config is the template; the CLI needs the stack file to exist.
            const file = path.join(REPO_ROOT, `Pulumi.${stack}.yaml`);
            const made = !fs.existsSync(file);
            if (made) fs.copyFileSync(path.join(REPO_ROOT, `Pulumi.${PREVIEW_TEMPLATE_STACK}.yaml`), file);
            try {
                await run("pulumi", ["destroy", "--stack", stack, "--yes", "--skip-preview", "--remove", "--non-interactive"], { cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024 });
            } finally {
                if (made) fs.rmSync(file, { force: true });
            }
        },
        async deleteResource(resource) {
            const response = await request(`${LINODE_API}/${endpoint[resource.kind](resource.id)}`, { method: "DELETE", token });
            // Linode refuses to delete a bucket that still holds objects; the bootstrap lifecycle rule empties it within a day.
            if (!response.ok && response.status !== 404) throw new Error(`HTTP ${response.status} ${await response.text()}`);
        },
    };
}

async function main(): Promise<number> {
    const project = (YAML.parse(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8")) as { name: string }).name;
    const options = parseArgs(process.argv.slice(2), process.env, project);
    const inventory = options.inventoryFile ? recordedInventory(options.inventoryFile) : await liveInventory(options, process.env);
    if (options.recordFile) fs.writeFileSync(options.recordFile, JSON.stringify(inventory, null, 2) + "\n");

    const plan = planSweep(inventory, options.settings);
    console.log(`sweep of ${project} previews at ${inventory.now} (idle limit ${options.settings.maxAgeHours} h, orphan grace ${options.settings.orphanGraceHours} h)`);
    for (const line of plan.kept) console.log(`  keep: ${line}`);
    if (!plan.actions.length) {
        console.log("nothing to sweep");
        return 0;
    }
    if (!options.yes) {
        for (const action of plan.actions) console.log(`  would ${describeAction(action)}`);
        console.log(`dry run: ${plan.actions.length} action${plan.actions.length === 1 ? "" : "s"}, nothing changed; run with --yes to act`);
        return 0;
    }
    const results = await applySweep(plan, liveExecutor(process.env), true);
    for (const r of results) console.log(`  ${r.outcome}: ${r.action}`);
    return results.some((r) => r.outcome.startsWith("failed")) ? 1 : 0;
}

main().then(
    (code) => process.exit(code),
    (err: Error) => {
        console.error(`sweep: ${err.message}`);
        process.exit(1);
    },
);
