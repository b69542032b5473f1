/**
 * Posts or edits the preview deployment's one PR comment.
 *
 *   ts-node scripts/prComment.ts --stack pr-12 --outputs outputs.json [--cost out/pr-12/cost.json]
 *       [--base-cost base/out/pr-12/cost.json] [--dry-run]
 *
 * A cost file that does not exist is left out (the base branch may predate
 * cost reports).
 *
 * GITHUB_TOKEN, GITHUB_REPOSITORY, GITHUB_SHA and (optionally) RUN_URL come
 * from the workflow. --dry-run prints the body instead of posting it.
 */
import * as fs from "fs";
import { environmentOf } from "../lib/environments";
import { markedCommentId, renderPreviewComment } from "../tooling/prComment";

const GITHUB_API = "https://api.github.com";
const REQUEST_TIMEOUT_MS = 30_000;

function flag(argv: string[], name: string): string | undefined {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
}

async function github(token: string, method: string, path: string, body?: unknown): Promise<unknown> {
    const response = await fetch(`${GITHUB_API}${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, Accept: "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${await response.text()}`);
    return response.json();
}

async function main(): Promise<void> {
    const argv = process.argv.slice(2);
    const stack = flag(argv, "--stack") ?? "";
    const prNumber = environmentOf(stack).prNumber;
    if (prNumber === undefined) throw new Error(`--stack must be a preview stack pr-<number>; got ${JSON.stringify(stack)}`);
    const outputsFile = flag(argv, "--outputs");
    if (!outputsFile) throw new Error("--outputs needs the file `pulumi stack output --json` wrote");
    const readCost = (file?: string) => (file && fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : undefined);
    const body = renderPreviewComment({
        stack, prNumber,
        commit: process.env.GITHUB_SHA ?? "unknown",
        outputs: JSON.parse(fs.readFileSync(outputsFile, "utf8")),
        cost: readCost(flag(argv, "--cost")),
        baseCost: readCost(flag(argv, "--base-cost")),
        runUrl: process.env.RUN_URL,
    });
    if (argv.includes("--dry-run")) {
        process.stdout.write(body);
        return;
    }
    const token = process.env.GITHUB_TOKEN;
    const repo = process.env.GITHUB_REPOSITORY;
    if (!token || !repo) throw new Error("GITHUB_TOKEN and GITHUB_REPOSITORY must be set");
    const comments: { id: number; body?: string }[] = [];
    for (let page = 1; ; page++) {
        const batch = (await github(token, "GET", `/repos/${repo}/issues/${prNumber}/comments?per_page=100&page=${page}`)) as { id: number; body?: string }[];
        comments.push(...batch);
        if (batch.length < 100) break;
    }
    const existing = markedCommentId(comments, stack);
    if (existing !== undefined) await github(token, "PATCH", `/repos/${repo}/issues/comments/${existing}`, { body });
    else await github(token, "POST", `/repos/${repo}/issues/${prNumber}/comments`, { body });
    console.log(`${existing !== undefined ? "edited" : "posted"} the preview comment on PR #${prNumber}`);
}

main().catch((err: Error) => {
    console.error(`pr comment: ${err.message}`);
    process.exit(1);
});
