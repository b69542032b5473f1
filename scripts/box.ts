/**
 * The box: the whole topology on this machine, from the real program.
 *
 *   npm run box -- --stack dev [--config key=value ...]   boot it, print the outputs
 *   npm run box:update -- [--config key=value ...] [--replace NAME ...]
 *                                                         a second `pulumi up` against it
 *   npm run box:down                                      remove everything
 *
 * `up` builds (or reuses) the cached Debian 12 image, brings up the
 * underlay, MinIO and the mirror, then runs index.ts under the mock runtime
 * with every resource carried out for real (box/cloud.ts). A failed or
 * interrupted `up` tears down what it made; a previous run's leftovers are
 * removed before a new one starts. `update` runs the program again with the
 * config changed (on top of what `up` was given) against the box's state,
 * and leaves the box as it is when it fails, for the logs.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { down, up, update } from "../box/cloud";
import { REPO_ROOT } from "../box/paths";
import { readState } from "../box/state";
import { BoxStep } from "../box/steps";

const COMMANDS = ["up", "update", "down"];

function parseArgs(argv: string[]): { command: string; stack: string; overrides: Record<string, string>; replace: string[] } {
    const [command = "up", ...rest] = argv;
    let stack = "dev";
    const overrides: Record<string, string> = {};
    const replace: string[] = [];
    for (let i = 0; i < rest.length; i++) {
        if (rest[i] === "--stack" && command === "up") stack = rest[++i];
        else if (rest[i] === "--replace" && command === "update") {
            const name = rest[++i] ?? "";
            if (!name) throw new Error("--replace needs a resource's logical name (nats-1-label, for example)");
            replace.push(name);
        } else if (rest[i] === "--config") {
            const pair = rest[++i] ?? "";
            const eq = pair.indexOf("=");
            if (eq <= 0) throw new Error(`--config needs key=value; got ${JSON.stringify(pair)}`);
            overrides[pair.slice(0, eq)] = pair.slice(eq + 1);
        } else throw new Error(`unknown argument ${JSON.stringify(rest[i])}; usage: box up [--stack NAME] [--config key=value]... | box update [--config key=value]... [--replace NAME]... | box down`);
    }
    if (!/^[A-Za-z0-9_.-]+$/.test(stack ?? "")) throw new Error(`--stack needs a stack name (letters, digits, . _ -); got ${JSON.stringify(stack)}`);
    if (!COMMANDS.includes(command)) throw new Error(`unknown command ${JSON.stringify(command)}; allowed: ${COMMANDS.join(", ")}`);
    return { command, stack, overrides, replace };
}

function summary(steps: Map<string, BoxStep>): string {
    const by = (step: BoxStep) => [...steps].filter(([, s]) => s === step).map(([name]) => name).sort();
    const lines = (["create", "update", "replace", "delete"] as const).map((step) => `  ${step}: ${by(step).join(", ") || "-"}`);
    return [`Resources: ${by("same").length} unchanged`, ...lines].join("\n");
}

function printOutputs(stack: string): void {
    log(`Outputs (secrets redacted, also in out/box/${stack}/outputs.json):`);
    log(fs.readFileSync(path.join(REPO_ROOT, "out", "box", stack, "outputs.json"), "utf8"));
}

const log = (line: string) => console.log(line);

function imageDir(): string {
    return execFileSync("bash", [path.join(REPO_ROOT, "box", "image", "build.sh")], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
}

async function main(): Promise<number> {
    const { command, stack, overrides, replace } = parseArgs(process.argv.slice(2));
    if (command === "down") {
        await down(log);
        return 0;
    }
    if (command === "update") {
        const { state, steps } = await update({ overrides, replace, log });
        log(`\nbox of stack ${state.stack} updated in ${((state.finishedMs ?? 0) / 1000).toFixed(0)}s: ${state.vms.filter((vm) => !vm.retired).length} VMs running`);
        log(summary(steps));
        printOutputs(state.stack);
        return 0;
    }
    if (readState()) {
        log("a previous box run is still here; removing it first");
        await down(log);
    }
    let tearingDown = false;
    const abort = async (why: string, code: number) => {
        if (tearingDown) return;
        tearingDown = true;
        console.error(`box up ${why}; tearing down what it made`);
        await down(log).catch((err) => console.error(`teardown failed: ${(err as Error).message}`));
        process.exit(code);
    };
    process.on("SIGINT", () => void abort("interrupted", 130));
    process.on("SIGTERM", () => void abort("terminated", 143));
    process.on("unhandledRejection", (err) => void abort(`failed: ${(err as Error)?.message ?? err}`, 1));
    try {
        const state = await up({ stack, overrides, imageDir: imageDir(), log });
        log(`\nbox of stack ${stack} up in ${((state.finishedMs ?? 0) / 1000).toFixed(0)}s: ${state.vms.length} VMs, ${state.resources.length} resources`);
        printOutputs(stack);
        log("npm run box:down removes it.");
        return 0;
    } catch (err) {
        await abort(`failed: ${(err as Error).message}`, 1);
        return 1;
    }
}

main().then(
    (code) => process.exit(code),
    (err: Error) => {
        console.error(err.message);
        process.exit(1);
    },
);
