/**
 * The real program (index.ts) under the mock cloud for one stack, with the
 * config its stack file (or, for pr-<n>, the preview template) gives it.
 * index.ts runs when it is required, so the module cache entry is dropped
 * before and after: every caller gets a fresh run and leaves none behind.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { stackFileName } from "../../lib/environments";
import { MockCloud, startMockCloud } from "../../lib/mockCloud";
import { rawConfigFromStackFile } from "../../lib/plan";

export const REPO_ROOT = path.resolve(__dirname, "../..");
export const PROJECT = "meshstack";

/** Every committed stack file's stack name (the template stands for a preview as pr-1). */
export function committedStacks(): string[] {
    return execFileSync("git", ["ls-files", "--", "Pulumi.*.yaml"], { cwd: REPO_ROOT, encoding: "utf8" }).split("\n")
        .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
        .filter((s): s is string => s !== undefined)
        .map((s) => (s === "pr" ? "pr-1" : s))
        .sort();
}

/** `extraConfig` (fully qualified keys) is set on top of the stack file, as `pulumi config set` would. */
export async function runStackProgram(stack: string, extraConfig: Record<string, string> = {}): Promise<{ cloud: MockCloud; outputs: Record<string, unknown> }> {
    const file = stackFileName(stack, (f) => fs.existsSync(path.join(REPO_ROOT, f)));
    const raw = rawConfigFromStackFile(fs.readFileSync(path.join(REPO_ROOT, file), "utf8"));
    const cloud = await startMockCloud({ project: PROJECT, stack, config: { ...raw.values, ...extraConfig }, secretKeys: [...raw.secretKeys], preview: true });
    const entry = require.resolve("../../index");
    delete require.cache[entry];
    try {
        const outputs = await cloud.runProgram(() => ({ ...require(entry) }));
        return { cloud, outputs };
    } finally {
        delete require.cache[entry];
    }
}
