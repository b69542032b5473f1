/**
 * The committed stacks, and the real program run for one of them through
 * the engine stand-in (./engine.ts) in preview mode, with the config its
 * stack file (or, for pr-<n>, the preview template) gives it.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { stackFileName } from "../../lib/environments";
import { ProgramRun, runProgram } from "./engine";

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

/**
 * `overrides` (fully qualified keys) are set on top of the stack file, as
 * `pulumi config set` would. index.ts runs when it is required, so its
 * cache entry is dropped afterwards too: a later `require("../index")`
 * runs the program again.
 */
export async function runStackProgram(stack: string, overrides: Record<string, string> = {}): Promise<ProgramRun> {
    const stackFile = stackFileName(stack, (f) => fs.existsSync(path.join(REPO_ROOT, f)));
    try {
        return await runProgram(stack, { preview: true, stackFile, overrides });
    } finally {
        forgetProgram();
    }
}

/** Drops index.ts from the module cache, so the next require of it runs the program again. */
export function forgetProgram(): void {
    delete require.cache[require.resolve(path.join(REPO_ROOT, "index.ts"))];
}
