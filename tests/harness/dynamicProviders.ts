/**
 * The serialized-provider harness. A dynamic provider only works in
 * production if the text Pulumi stores in `__provider` works on its own in
 * the engine's provider host, a different process with no access to the
 * program's live objects. So tests never call a provider object directly:
 * they capture the serialized text under the mock runtime and drive it in a
 * fresh Node process through `ProviderHost`.
 *
 * Host rules the tests rely on (and providers must respect):
 * - `cancel` is a no-op in the dynamic-provider host: every wait needs its
 *   own deadline. On Ctrl-C the engine ends the process; `kill` does that.
 * - `update` must return the full outputs; `delete` runs the code stored in
 *   state; inputs arrive as plain JSON with secrets unwrapped.
 * - Progress goes to console.log: the engine passes a dynamic provider's
 *   stdout through to `pulumi up`, while `pulumi.log` has no engine
 *   connection in the host (pulumi/pulumi#18249, #18253). `logs` collects it.
 */
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as readline from "readline";
import * as pulumi from "@pulumi/pulumi";
import { isRpcSecret, unwrapSecrets } from "../../tooling/mockCloud";

const REPO_ROOT = path.resolve(__dirname, "..", "..");

export interface CapturedDynamicResource {
    type: string;
    name: string;
    /** Inputs as the provider host receives them: resolved, secrets unwrapped, no `__provider`. */
    inputs: Record<string, any>;
    /** Top-level input names the program marked secret. */
    secretInputs: string[];
    /** The serialized provider text the engine stores in state. */
    serializedProvider: string;
}

/**
 * Runs `factory` under the mock runtime and returns every dynamic resource it
 * registered. `factory` returns the resources to wait for.
 */
export async function captureDynamicResources(
    factory: () => pulumi.Resource | pulumi.Resource[],
    options: { project?: string; stack?: string } = {},
): Promise<CapturedDynamicResource[]> {
    const captured: CapturedDynamicResource[] = [];
    await pulumi.runtime.setMocks(
        {
            newResource(args) {
                if (args.type.startsWith("pulumi-nodejs:dynamic")) {
                    const { __provider, ...rest } = args.inputs;
                    captured.push({
                        type: args.type,
                        name: args.name,
                        inputs: unwrapSecrets(rest),
                        secretInputs: Object.keys(rest).filter((k) => isRpcSecret(rest[k])),
                        serializedProvider: unwrapSecrets(__provider),
                    });
                }
                return { id: `${args.name}-id`, state: args.inputs };
            },
            call(args) {
                return args.inputs;
            },
        },
        options.project ?? "meshstack",
        options.stack ?? "test",
        false,
    );
    const made = factory();
    const resources = Array.isArray(made) ? made : [made];
    await Promise.all(resources.map((r) => new Promise((resolve) => r.urn.apply(resolve))));
    return captured;
}

/** Captures exactly one dynamic resource; fails when the factory made none or several. */
export async function captureDynamicResource(factory: () => pulumi.Resource): Promise<CapturedDynamicResource> {
    const captured = await captureDynamicResources(factory);
    if (captured.length !== 1) throw new Error(`expected one dynamic resource, captured ${captured.length}`);
    return captured[0];
}

/** Environment that makes a host refuse (and report) any network access: what a preview may do. */
export const OFFLINE_HOST_ENV = { MESHSTACK_PROVIDER_HOST_OFFLINE: "1" };
/** The line an offline host prints for each refused network access. */
export const OFFLINE_MARK = "[provider-host] network access during an offline call:";

/** Stryker's state in this process (npm run mutate), handed to the host: see providerHostMain.js. */
function mutationTestingEnv(): NodeJS.ProcessEnv {
    const stryker = (globalThis as { __stryker__?: { activeMutant?: string } }).__stryker__;
    return stryker ? { MESHSTACK_MUTATION_TESTING: "1", MESHSTACK_ACTIVE_MUTANT: stryker.activeMutant ?? "" } : {};
}

export class ProviderHostError extends Error {
    constructor(message: string, public readonly hostStack?: string) {
        super(message);
    }
}

/** One serialized provider running in its own Node process. */
export class ProviderHost {
    /** Every line the provider printed on stdout or stderr: its progress log during `pulumi up`. */
    public readonly logs: string[] = [];

    /** Network accesses an offline host refused (see OFFLINE_HOST_ENV). */
    get networkAttempts(): string[] {
        return this.logs.filter((line) => line.startsWith(OFFLINE_MARK));
    }
    private seq = 0;
    private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
    /** Answers held until `logs` has the lines the provider printed before it answered (they come on another pipe). */
    private readonly heldAnswers: { printedLines: number; deliver: () => void }[] = [];
    private linesRead = 0;
    private exited?: Promise<number | null>;

    private constructor(private readonly child: ChildProcess, private readonly tempDir: string) {}

    /**
     * `config` is the stack config the engine hands the provider's configure()
     * (qualified keys, values as the stack file's text); none by default.
     */
    static async start(serializedProvider: string, env: NodeJS.ProcessEnv = {}, config: Record<string, string> = {}): Promise<ProviderHost> {
        const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-provider-"));
        const file = path.join(tempDir, "provider.js");
        fs.writeFileSync(file, serializedProvider);
        const child = spawn(process.execPath, [path.join(__dirname, "providerHostMain.js"), file], {
            cwd: REPO_ROOT,
            env: { ...process.env, ...mutationTestingEnv(), ...env },
            stdio: ["ignore", "pipe", "pipe", "pipe", "pipe"],
        });
        const host = new ProviderHost(child, tempDir);
        // "close", not "exit": by then stdout and stderr are drained, so `logs` holds every line.
        host.exited = new Promise((resolve) => child.on("close", (code) => resolve(code)));
        for (const stream of [child.stdout!, child.stderr!]) {
            readline.createInterface({ input: stream }).on("line", (line) => {
                host.logs.push(line);
                host.linesRead++;
                host.deliverHeldAnswers();
            });
        }
        readline.createInterface({ input: child.stdio[3] as NodeJS.ReadableStream }).on("line", (line) => {
            const message = JSON.parse(line);
            const waiter = host.pending.get(message.seq);
            host.pending.delete(message.seq);
            if (!waiter) return;
            const deliver = () => (message.error ? waiter.reject(new ProviderHostError(message.error.message, message.error.stack)) : waiter.resolve(message.result));
            host.heldAnswers.push({ printedLines: message.printedLines, deliver });
            host.deliverHeldAnswers();
        });
        host.exited.then((code) => {
            // Closed: every line printed has been read, so nothing is held any longer.
            for (const held of host.heldAnswers.splice(0)) held.deliver();
            for (const waiter of host.pending.values()) waiter.reject(new ProviderHostError(`provider host exited (${code})`));
            host.pending.clear();
        });
        await host.call("configure", { config });
        return host;
    }

    private deliverHeldAnswers(): void {
        for (let i = 0; i < this.heldAnswers.length; ) {
            if (this.heldAnswers[i].printedLines <= this.linesRead) this.heldAnswers.splice(i, 1)[0].deliver();
            else i++;
        }
    }

    call(method: string, args: Record<string, unknown>): Promise<any> {
        const seq = ++this.seq;
        return new Promise((resolve, reject) => {
            this.pending.set(seq, { resolve, reject });
            (this.child.stdio[4] as NodeJS.WritableStream).write(JSON.stringify({ seq, method, args }) + "\n");
        });
    }

    check(olds: object, news: object): Promise<{ inputs: any; failures?: { property: string; reason: string }[] }> {
        return this.call("check", { olds, news });
    }

    create(inputs: object): Promise<{ id: string; outs: any }> {
        return this.call("create", { inputs });
    }

    /** check() as the engine acts on it in an `up`: the checked inputs, or the failures as one error. */
    async checkedInputs(olds: object, news: object): Promise<any> {
        const checked = await this.check(olds, news);
        if (checked.failures?.length) {
            throw new ProviderHostError(checked.failures.map((f) => `${f.property}: ${f.reason}`).join("; "));
        }
        return checked.inputs;
    }

    /** What the engine does on `up` for a new resource: check, refuse on failures, then create. */
    async checkAndCreate(inputs: object): Promise<{ id: string; outs: any }> {
        return this.create(await this.checkedInputs({}, inputs));
    }

    read(id: string, props: object): Promise<{ id: string; props: any }> {
        return this.call("read", { id, props });
    }

    diff(id: string, olds: object, news: object): Promise<{ changes?: boolean; diffs?: string[]; replaces?: string[]; deleteBeforeReplace?: boolean }> {
        return this.call("diff", { id, olds, news });
    }

    update(id: string, olds: object, news: object): Promise<{ outs: any }> {
        return this.call("update", { id, olds, news });
    }

    delete(id: string, props: object): Promise<void> {
        return this.call("delete", { id, props });
    }

    /** Ends the process as the engine does when a user cancels `pulumi up`. Resolves with the exit code. */
    kill(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
        this.child.kill(signal);
        return this.exited!;
    }

    async close(): Promise<void> {
        if (this.child.exitCode === null && this.child.signalCode === null) {
            (this.child.stdio[4] as NodeJS.WritableStream).end();
            const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
            await this.exited;
            clearTimeout(timer);
        }
        fs.rmSync(this.tempDir, { recursive: true, force: true });
    }
}
