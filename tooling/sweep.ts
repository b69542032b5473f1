/**
 * The sweeper's decisions, as a pure function of an inventory: which preview
 * stacks to destroy (their PR is closed, or nobody deployed them for too
 * long) and which Linode resources a preview left behind without a stack
 * (provably named or tagged for this project's pr-<n> whose stack no longer
 * exists; see provesPreview). scripts/sweep.ts
 * gathers the inventory (pulumi stack ls, GitHub, the Linode API) and acts
 * on the plan only with --yes.
 */
import { environmentOf, PREVIEW_TAG, previewStackName, prNumberOfTag, resourceTags } from "../lib/environments";
import { namedForStack } from "../lib/naming";

/** One entry of `pulumi stack ls --json`. */
export interface StackListEntry {
    name: string;
    lastUpdate?: string;
    updateInProgress?: boolean;
    resourceCount?: number;
}

export interface PullRequestState {
    number: number;
    /** `missing`: the repository has no such pull request. */
    state: "open" | "closed" | "missing";
}

export type LinodeResourceKind = "instance" | "firewall" | "bucket" | "object-storage-key";

export interface LinodeResource {
    kind: LinodeResourceKind;
    /** Numeric id, or `<region>/<label>` for a bucket. */
    id: string;
    label: string;
    tags: string[];
    created?: string;
}

export interface SweepInventory {
    /** ISO time the inventory was taken. */
    now: string;
    stacks: StackListEntry[];
    pulls: PullRequestState[];
    resources: LinodeResource[];
}

export interface SweepSettings {
    project: string;
    /** A preview not updated for this long is destroyed even while its PR is open. */
    maxAgeHours: number;
    /**
     * A resource younger than this is never an orphan: its stack may be
     * being created at this moment, between the stack listing and this one.
     */
    orphanGraceHours: number;
}

export const DEFAULT_SWEEP_SETTINGS: SweepSettings = { project: "meshstack", maxAgeHours: 72, orphanGraceHours: 2 };

export type SweepAction =
    | { action: "destroy-stack"; stack: string; reason: string }
    | { action: "delete-resource"; resource: LinodeResource; reason: string };

export interface SweepPlan {
    actions: SweepAction[];
    /** What the sweeper saw and left alone, with why (for the report). */
    kept: string[];
}

const HOUR_MS = 3_600_000;

function hoursBetween(from: string | undefined, now: string): number | undefined {
    if (!from) return undefined;
    const then = Date.parse(from);
    return Number.isNaN(then) ? undefined : (Date.parse(now) - then) / HOUR_MS;
}

/** `org/project/pr-12` and `pr-12` both name stack pr-12. */
export function shortStackName(name: string): string {
    return name.split("/").pop() ?? name;
}

/** The PR numbers a resource's tags or label mention: candidates only, proved by previewPrOf. */
function mentionedPrs(resource: LinodeResource): number[] {
    const prs = resource.tags.map(prNumberOfTag).filter((n): n is number => n !== undefined);
    for (const match of resource.label.matchAll(/(?:^|-)(pr-[1-9][0-9]*)-/g)) {
        const pr = environmentOf(match[1]).prNumber;
        if (pr !== undefined) prs.push(pr);
    }
    return [...new Set(prs)];
}

/**
 * Whether the resource provably belongs to this project's stack pr-<n>:
 * its name is one lib/naming makes for exactly (project, pr-<n>) (it holds
 * the pair's hash), or it carries every tag the program gives that stack's
 * resources, the project's own stack tag included. Another project's
 * preview, a custom stack `pr-<n>-hotfix` and a hand-made resource prove
 * nothing, whatever their names start with.
 */
export function provesPreview(resource: LinodeResource, project: string, pr: number): boolean {
    const stack = previewStackName(pr);
    if (namedForStack(resource.label, { project, stack })) return true;
    const tags = resourceTags(project, environmentOf(stack));
    return tags.every((tag) => resource.tags.includes(tag));
}

/** The pull request a Linode resource provably belongs to (see provesPreview), if any. */
export function previewPrOf(resource: LinodeResource, project: string): number | undefined {
    return mentionedPrs(resource).find((pr) => provesPreview(resource, project, pr));
}

/** A resource that mentions a preview without proving it is this project's: reported, never deleted. */
function looksLikePreview(resource: LinodeResource): boolean {
    return resource.tags.includes(PREVIEW_TAG) || mentionedPrs(resource).length > 0;
}

const DELETE_ORDER: Record<LinodeResourceKind, number> = { instance: 0, firewall: 1, bucket: 2, "object-storage-key": 3 };

export function planSweep(inventory: SweepInventory, settings: SweepSettings = DEFAULT_SWEEP_SETTINGS): SweepPlan {
    const actions: SweepAction[] = [];
    const kept: string[] = [];
    const pulls = new Map(inventory.pulls.map((p) => [p.number, p.state]));
    const stackNames = new Set(inventory.stacks.map((s) => shortStackName(s.name)));

    for (const entry of inventory.stacks) {
        const stack = shortStackName(entry.name);
        const env = environmentOf(stack);
        // Only exactly pr-<n> has a PR number (lib/environments): pr-12-hotfix is a custom stack, never destroyed here.
        if (env.prNumber === undefined) continue;
        if (entry.updateInProgress) {
            kept.push(`${stack}: an update is in progress`);
            continue;
        }
        const state = pulls.get(env.prNumber);
        const idle = hoursBetween(entry.lastUpdate, inventory.now);
        if (state === "closed") actions.push({ action: "destroy-stack", stack, reason: `PR #${env.prNumber} is closed` });
        else if (state === "missing") actions.push({ action: "destroy-stack", stack, reason: `PR #${env.prNumber} does not exist` });
        else if (idle !== undefined && idle > settings.maxAgeHours) {
            actions.push({ action: "destroy-stack", stack, reason: `not updated for ${Math.floor(idle)} h (limit ${settings.maxAgeHours} h)` });
        } else kept.push(`${stack}: PR #${env.prNumber} is ${state ?? "of unknown state"}${idle !== undefined ? `, updated ${Math.floor(idle)} h ago` : ""}`);
    }

    // What has no creation time (object storage keys) is as young as the
    // youngest thing of its PR: a key is made after its bucket, so a stack
    // being created right now always shows a young sibling.
    const youngest = new Map<number, number>();
    for (const resource of inventory.resources) {
        const pr = previewPrOf(resource, settings.project);
        const age = hoursBetween(resource.created, inventory.now);
        if (pr !== undefined && age !== undefined) youngest.set(pr, Math.min(age, youngest.get(pr) ?? Infinity));
    }

    const orphans: SweepAction[] = [];
    for (const resource of inventory.resources) {
        const pr = previewPrOf(resource, settings.project);
        if (pr === undefined) {
            // Reported only where it would have been an orphan: a PR it mentions has no stack.
            const stackless = mentionedPrs(resource).filter((n) => !stackNames.has(previewStackName(n)));
            if (!looksLikePreview(resource) || (stackless.length === 0 && mentionedPrs(resource).length > 0)) continue;
            kept.push(stackless.length
                ? `${resource.kind} ${resource.label}: mentions ${stackless.map(previewStackName).join(", ")}, but neither its name nor its tags prove it is ${settings.project}'s stack of that name; left for a person to judge`
                : `${resource.kind} ${resource.label}: tagged ${PREVIEW_TAG} without a PR tag; left for a person to judge`);
            continue;
        }
        const stack = previewStackName(pr);
        if (stackNames.has(stack)) continue;
        const age = hoursBetween(resource.created, inventory.now) ?? youngest.get(pr) ?? Infinity;
        if (age < settings.orphanGraceHours) {
            kept.push(`${resource.kind} ${resource.label}: of ${stack}, which has no stack, but younger than ${settings.orphanGraceHours} h`);
            continue;
        }
        orphans.push({ action: "delete-resource", resource, reason: `belongs to ${stack}, which has no stack` });
    }
    orphans.sort((a, b) => (a.action === "delete-resource" && b.action === "delete-resource" ? DELETE_ORDER[a.resource.kind] - DELETE_ORDER[b.resource.kind] : 0));
    return { actions: [...actions, ...orphans], kept };
}

/** What acting on a plan needs; scripts/sweep.ts implements it with the Pulumi CLI and the Linode API. */
export interface SweepExecutor {
    destroyStack(stack: string): Promise<void>;
    deleteResource(resource: LinodeResource): Promise<void>;
}

export function describeAction(a: SweepAction): string {
    return a.action === "destroy-stack"
        ? `destroy and remove stack ${a.stack}: ${a.reason}`
        : `delete ${a.resource.kind} ${a.resource.label} (${a.resource.id}): ${a.reason}`;
}

/**
 * Acts on a plan when `yes`, else only reports it. One failure does not stop
 * the rest: every action's outcome is in the result.
 */
export async function applySweep(plan: SweepPlan, executor: SweepExecutor, yes: boolean): Promise<{ action: string; outcome: "dry-run" | "done" | string }[]> {
    const results: { action: string; outcome: string }[] = [];
    for (const a of plan.actions) {
        const action = describeAction(a);
        if (!yes) {
            results.push({ action, outcome: "dry-run" });
            continue;
        }
        try {
            if (a.action === "destroy-stack") await executor.destroyStack(a.stack);
            else await executor.deleteResource(a.resource);
            results.push({ action, outcome: "done" });
        } catch (err) {
            results.push({ action, outcome: `failed: ${(err as Error).message}` });
        }
    }
    return results;
}

/** Linode API v4 list entries, as recorded, into LinodeResources. */
export function linodeResourcesFrom(lists: {
    instances?: { id: number; label: string; tags?: string[]; created?: string }[];
    firewalls?: { id: number; label: string; tags?: string[]; created?: string }[];
    buckets?: { label: string; region?: string; cluster?: string; created?: string }[];
    keys?: { id: number; label: string }[];
}): LinodeResource[] {
    // Linode reports times without a zone; they are UTC.
    const utc = (t?: string) => (t && !/[zZ]|[+-][0-9]{2}:?[0-9]{2}$/.test(t) ? `${t}Z` : t);
    return [
        ...(lists.instances ?? []).map((i) => ({ kind: "instance" as const, id: String(i.id), label: i.label, tags: i.tags ?? [], created: utc(i.created) })),
        ...(lists.firewalls ?? []).map((f) => ({ kind: "firewall" as const, id: String(f.id), label: f.label, tags: f.tags ?? [], created: utc(f.created) })),
        ...(lists.buckets ?? []).map((b) => ({ kind: "bucket" as const, id: `${b.region ?? b.cluster}/${b.label}`, label: b.label, tags: [], created: utc(b.created) })),
        // Keys carry no creation time; planSweep dates them by their PR's other resources.
        ...(lists.keys ?? []).map((k) => ({ kind: "object-storage-key" as const, id: String(k.id), label: k.label, tags: [] })),
    ];
}
