/**
 * A stand-in for the Pulumi engine around the real program, since the CLI
 * cannot run here. It runs index.ts under the mock runtime the way the
 * engine drives a program, and hands every dynamic resource to its
 * serialized provider in a fresh process, as the engine's dynamic-provider
 * host does:
 *
 * - `previewFreshStack`: `pulumi preview` of a new stack. Nothing exists, so
 *   every output a provider computes on create (ids, addresses, bucket
 *   endpoints, keys, random results, certificates, dynamic outputs) is
 *   unknown, and inputs built from them reach check() as the sentinel.
 * - `up`: a completed `pulumi up`. Dynamic resources whose create needs no
 *   network are created by their own providers; the rest keep the mock
 *   cloud's outputs.
 * - `previewChange`: `pulumi preview` of a changed config (and resources
 *   named for replacement, as `--replace` does) against that state. A resource whose inputs are unchanged keeps its recorded outputs
 *   (known); properties in its `ignoreChanges` count with their recorded values; a changed one is an update or a replacement whose computed
 *   outputs are unknown, so the change ripples downstream exactly as far as
 *   the engine would let it. Dynamic resources decide with their own
 *   check() and diff(). It also gives the order in which the `up` would
 *   delete old resources (`deletions`), as the engine orders them.
 *
 * Every provider call here runs with the network refused: a preview must
 * not touch it.
 */
import * as path from "path";
import { cliStackConfigOf } from "../../tooling/cliConfig";
import { FakedAnswer, isRpcSecret, MockCloud, Registration, ResourceAnswer, startMockCloud, unwrapSecrets } from "../../tooling/mockCloud";
import { UNKNOWN } from "../../providers/unknowns";
import { OFFLINE_HOST_ENV, ProviderHost } from "../harness/dynamicProviders";
import { differingKeys, replacingInputs, withIgnoredChanges } from "../../tooling/replacement";

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const PROJECT = "meshstack";
const isUnknown: (value: unknown) => boolean = require("@pulumi/pulumi/output").isUnknown;

export const DYNAMIC_PREFIX = "pulumi-nodejs:dynamic";

/** Inputs as the dynamic-provider host receives them: secrets unwrapped, unknowns as the sentinel, no `__provider`. */
export function asHostSees(value: unknown): any {
    if (isUnknown(value)) return UNKNOWN;
    if (isRpcSecret(value)) return asHostSees(value.value);
    if (Array.isArray(value)) return value.map(asHostSees);
    if (value && typeof value === "object") {
        return Object.fromEntries(Object.entries(value).filter(([k, v]) => k !== "__provider" && v !== undefined).map(([k, v]) => [k, asHostSees(v)]));
    }
    return value;
}

export interface CheckFailure {
    resource: string;
    property: string;
    reason: string;
}

/** One host per distinct serialized provider, reused across resources, all offline. */
class OfflineHosts {
    private readonly hosts = new Map<string, Promise<ProviderHost>>();

    get(serializedProvider: string): Promise<ProviderHost> {
        let host = this.hosts.get(serializedProvider);
        if (!host) {
            host = ProviderHost.start(serializedProvider, OFFLINE_HOST_ENV);
            this.hosts.set(serializedProvider, host);
        }
        return host;
    }

    /** Closes every host and returns the network accesses they refused. */
    async close(): Promise<string[]> {
        const hosts = await Promise.all(this.hosts.values());
        await Promise.all(hosts.map((h) => h.close()));
        return hosts.flatMap((h) => h.networkAttempts);
    }

    /** What the providers printed: the lines the CLI shows of them; complete once closed. */
    async logs(): Promise<string[]> {
        return (await Promise.all(this.hosts.values())).flatMap((h) => h.logs);
    }
}

function serializedProviderOf(registration: Registration): string {
    return unwrapSecrets(registration.inputs.__provider) as string;
}

function withUnknowns(registration: Registration, faked: FakedAnswer): ResourceAnswer {
    return { id: undefined, state: { ...registration.inputs, ...Object.fromEntries(faked.computed.map((k) => [k, UNKNOWN])) } };
}

export interface ProgramRun {
    cloud: MockCloud;
    outputs: Record<string, unknown>;
}

/** Runs index.ts once with a stack's config as the CLI hands it over, plus overrides (qualified keys). */
export async function runProgram(
    stack: string,
    options: { overrides?: Record<string, string>; preview: boolean; answer?: (r: Registration, f: FakedAnswer) => ResourceAnswer | Promise<ResourceAnswer>; stackFile?: string },
): Promise<ProgramRun> {
    const cli = cliStackConfigOf(REPO_ROOT, stack, options.stackFile);
    if (!cli.ok) throw new Error(cli.errors.join("\n"));
    const cloud = await startMockCloud({
        project: PROJECT,
        stack,
        config: { ...cli.raw.values, ...(options.overrides ?? {}) },
        secretKeys: [...cli.raw.secretKeys],
        preview: options.preview,
        answer: options.answer,
    });
    // A module runs once per require: drop the cached program before and after,
    // so this run and any other test's run each execute it afresh.
    const program = require.resolve(path.join(REPO_ROOT, "index.ts"));
    delete require.cache[program];
    try {
        const outputs = await cloud.runProgram(() => ({ ...require(program) }));
        return { cloud, outputs };
    } finally {
        delete require.cache[program];
    }
}

export interface FreshPreview extends ProgramRun {
    /** Every dynamic resource's inputs as its provider's check() got them. */
    checked: { name: string; type: string; inputs: Record<string, unknown> }[];
    failures: CheckFailure[];
    networkAttempts: string[];
}

/** `pulumi preview` of a new stack. */
export async function previewFreshStack(stack: string, stackFile?: string, overrides?: Record<string, string>): Promise<FreshPreview> {
    const hosts = new OfflineHosts();
    const checked: FreshPreview["checked"] = [];
    const failures: CheckFailure[] = [];
    const run = await runProgram(stack, {
        preview: true,
        stackFile,
        overrides,
        async answer(registration, faked) {
            if (!registration.custom) return faked;
            if (registration.type.startsWith(DYNAMIC_PREFIX)) {
                const inputs = asHostSees(registration.inputs);
                checked.push({ name: registration.name, type: registration.type, inputs });
                const host = await hosts.get(serializedProviderOf(registration));
                const result = await host.check({}, inputs);
                for (const f of result.failures ?? []) failures.push({ resource: registration.name, ...f });
            }
            return withUnknowns(registration, faked);
        },
    });
    return { ...run, checked, failures, networkAttempts: await hosts.close() };
}

/** A resource as the engine keeps it in state after an `up`. */
interface StateEntry {
    type: string;
    id: string;
    /** Inputs as last applied (host view). */
    inputs: Record<string, unknown>;
    /** Outputs as registered (what the program reads back). */
    state: Record<string, unknown>;
    /** Outputs as the dynamic provider returned them (what diff() gets as olds). */
    providerOutputs?: Record<string, unknown>;
    /** What it depends on (inputs taken from outputs, and dependsOn), as the snapshot keeps it for ordering deletions. */
    dependencies: string[];
}

export type StackState = Map<string, StateEntry>;

/** Dynamic types whose create is pure for the inputs the program gives them (signing, pinning; nothing to upload or delete). */
function createsOffline(type: string, inputs: Record<string, unknown>): boolean {
    if (type.endsWith(":PresignedUrl") || type.endsWith(":PinnedToGeneration")) return true;
    if (type.endsWith(":BootstrapObject")) return inputs.store === false;
    if (type.endsWith(":BootstrapObjectCleanup")) return inputs.stored === false;
    return false;
}

/** A completed `pulumi up`: the state a later preview starts from. */
export async function up(stack: string, overrides?: Record<string, string>): Promise<{ run: ProgramRun; state: StackState }> {
    const hosts = new OfflineHosts();
    const state: StackState = new Map();
    const run = await runProgram(stack, {
        preview: false,
        overrides,
        async answer(registration, faked) {
            if (!registration.custom) return faked;
            const inputs = asHostSees(registration.inputs);
            let answer: ResourceAnswer = faked;
            let providerOutputs: Record<string, unknown> | undefined;
            if (registration.type.startsWith(DYNAMIC_PREFIX)) {
                if (createsOffline(registration.type, inputs)) {
                    const host = await hosts.get(serializedProviderOf(registration));
                    const created = await host.checkAndCreate(inputs);
                    providerOutputs = created.outs;
                    answer = { id: created.id, state: { ...registration.inputs, ...created.outs } };
                } else {
                    providerOutputs = asHostSees(faked.state);
                }
            }
            state.set(registration.name, { type: registration.type, id: answer.id!, inputs, state: answer.state, providerOutputs, dependencies: [] });
            return answer;
        },
    });
    // Dependencies are complete once the program has settled.
    for (const recorded of run.cloud.resources) {
        const entry = state.get(recorded.name);
        if (entry) entry.dependencies = [...recorded.dependencies];
    }
    const refused = await hosts.close();
    if (refused.length) throw new Error(`up: a provider reached for the network although its create should be offline: ${refused.join("; ")}`);
    return { run, state };
}

export type Step = "same" | "update" | "replace" | "create" | "delete";

export interface ChangePreview extends ProgramRun {
    steps: Map<string, Step>;
    /** Why each non-"same" resource changes: the properties that differ or may differ. */
    reasons: Map<string, string[]>;
    failures: CheckFailure[];
    networkAttempts: string[];
    /** Every line the dynamic providers printed (their warnings among them). */
    providerLogs: string[];
    /** The old resources the `up` would delete, in the engine's order (see deletionOrder). */
    deletions: string[];
}

export interface ChangeOptions {
    /**
     * Resources replaced whatever their inputs say: `pulumi up --replace
     * <urn>`, or a provider that decides to replace on its own (a
     * LocallySignedCert inside its early-renewal window).
     */
    replace?: string[];
}

/** `pulumi preview` of the same stack with changed config, against a completed `up`'s state. */
export async function previewChange(stack: string, state: StackState, overrides: Record<string, string>, options: ChangeOptions = {}): Promise<ChangePreview> {
    const forced = new Set(options.replace ?? []);
    for (const name of forced) if (!state.has(name)) throw new Error(`previewChange: no resource named ${name} in state to replace`);
    const hosts = new OfflineHosts();
    const steps = new Map<string, Step>();
    const reasons = new Map<string, string[]>();
    const failures: CheckFailure[] = [];
    const deletedFirst = new Set<string>();
    const run = await runProgram(stack, {
        preview: true,
        overrides,
        async answer(registration, faked) {
            if (!registration.custom) return faked;
            const old = state.get(registration.name);
            if (!old) {
                steps.set(registration.name, "create");
                return withUnknowns(registration, faked);
            }
            const news = withIgnoredChanges(old.inputs, asHostSees(registration.inputs), registration.options?.ignoreChanges);
            let step: Step;
            let why: string[];
            if (registration.type.startsWith(DYNAMIC_PREFIX)) {
                const host = await hosts.get(serializedProviderOf(registration));
                const checked = await host.check(old.inputs, news);
                for (const f of checked.failures ?? []) failures.push({ resource: registration.name, ...f });
                const diff = await host.diff(old.id, old.providerOutputs!, checked.inputs);
                step = !diff.changes ? "same" : (diff.replaces ?? []).length ? "replace" : "update";
                why = diff.diffs ?? [];
                if (diff.deleteBeforeReplace) deletedFirst.add(registration.name);
            } else {
                why = differingKeys(old.inputs, news);
                const replaces = replacingInputs(registration.type);
                step = why.length === 0 ? "same" : why.some(replaces) ? "replace" : "update";
            }
            if (forced.has(registration.name)) {
                step = "replace";
                why = ["(replaced on request)", ...why];
            }
            if (registration.options?.deleteBeforeReplace) deletedFirst.add(registration.name);
            steps.set(registration.name, step);
            if (step === "same") return { id: old.id, state: old.state };
            reasons.set(registration.name, why);
            const unknown = withUnknowns(registration, faked);
            return { id: step === "update" ? old.id : undefined, state: unknown.state };
        },
    });
    // What the program no longer registers, the engine deletes.
    for (const name of state.keys()) if (!steps.has(name)) steps.set(name, "delete");
    const networkAttempts = await hosts.close();
    const deletions = deletionOrder(run.cloud, state, steps, [...deletedFirst].filter((name) => steps.get(name) === "replace"));
    return { ...run, steps, reasons, failures, networkAttempts, providerLogs: await hosts.logs(), deletions };
}

/** Names of the resources whose outputs feed a registered resource's inputs (its property dependencies). */
function propertyDependenciesOf(cloud: MockCloud, name: string): Set<string> {
    return new Set(Object.values(cloud.byName(name).propertyDependencies ?? {}).flatMap((names) => [...names]));
}

/**
 * The order in which the engine deletes old resources in an `up`
 * (pulumi/pulumi pkg/resource/deploy/step_generator.go and
 * deployment_executor.go):
 * - a deleteBeforeReplace replacement is deleted when its registration is
 *   processed, and first, eagerly, every transitive dependent the replacement
 *   replaces too (calculateDependentReplacements: a dependent whose diff,
 *   with the inputs it takes from the replaced resources unknown, says
 *   replace; here, a dependent this preview replaces through an input fed by
 *   one of them), dependents before what they depend on;
 * - everything else that goes (resources the program no longer registers,
 *   and create-before-delete replacements) is deleted once the program is
 *   done, after every other step, each before what it depends on.
 * `deletedFirst` lists the deleteBeforeReplace replacements in registration order.
 */
function deletionOrder(cloud: MockCloud, state: StackState, steps: Map<string, Step>, deletedFirst: string[]): string[] {
    const order: string[] = [];
    const registered = cloud.resources.map((r) => r.name);
    for (const root of deletedFirst) {
        const condemned = new Set([root]);
        const dependents: string[] = [];
        // Registration order is dependency order: what feeds a resource registered before it.
        for (const name of registered.slice(registered.indexOf(root) + 1)) {
            if (steps.get(name) !== "replace" || condemned.has(name)) continue;
            if ([...propertyDependenciesOf(cloud, name)].some((dep) => condemned.has(dep))) {
                condemned.add(name);
                dependents.push(name);
            }
        }
        for (const name of [...dependents.reverse(), root]) if (!order.includes(name)) order.push(name);
    }
    const last = [...steps].filter(([name, step]) => (step === "delete" || step === "replace") && !order.includes(name) && state.has(name)).map(([name]) => name);
    while (last.length) {
        const next = last.findIndex((name) => !last.some((other) => other !== name && state.get(other)!.dependencies.includes(name)));
        if (next < 0) throw new Error(`deletionOrder: a dependency cycle among ${last.join(", ")}`);
        order.push(...last.splice(next, 1));
    }
    return order;
}

/** Logical names by step, for assertions and messages. */
export function namesWith(preview: ChangePreview, step: Step): string[] {
    return [...preview.steps].filter(([, s]) => s === step).map(([name]) => name).sort();
}

