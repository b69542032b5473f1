/**
 * Environments: what a stack is (dev, staging, prod, a pull request's
 * preview) follows from its name alone, so the program, the offline plan,
 * the policy pack and the sweeper agree without another setting to get
 * wrong. Pure: no Pulumi import.
 */

export type EnvironmentKind = "dev" | "staging" | "prod" | "preview" | "custom";

export interface Environment {
    /** The stack name it was derived from. */
    stack: string;
    kind: EnvironmentKind;
    /** The pull request a preview stack belongs to. */
    prNumber?: number;
    /**
     * Resources that hold state (bucket, NATS nodes, the KV bucket, golden
     * guests) get `protect: true`: deleting or replacing one needs a
     * deliberate `pulumi state unprotect` first.
     */
    protectState: boolean;
}

/** `pr-<number>`: one short-lived stack per pull request. */
export const PREVIEW_STACK = /^pr-([1-9][0-9]{0,8})$/;
/** The committed template every preview stack's config is copied from. */
export const PREVIEW_TEMPLATE_STACK = "pr";

export function environmentOf(stack: string): Environment {
    const preview = PREVIEW_STACK.exec(stack);
    if (preview) return { stack, kind: "preview", prNumber: Number(preview[1]), protectState: false };
    if (stack === PREVIEW_TEMPLATE_STACK) return { stack, kind: "preview", protectState: false };
    if (stack === "dev" || stack === "staging") return { stack, kind: stack, protectState: false };
    if (stack === "prod") return { stack, kind: "prod", protectState: true };
    return { stack, kind: "custom", protectState: false };
}

/**
 * A stack name that is dev, staging, prod or pr-<n> in another case (`Prod`,
 * `PR-12`), or pr-<n> with a leading zero (`pr-012`), reads as that
 * environment but environmentOf takes it for a custom stack: none of prod's
 * protections or refusals, no preview tags. It is refused rather than
 * normalised: stack names are case-sensitive in Pulumi, so `Prod` and `prod`
 * can both exist, and normalising would give two stacks one environment's
 * protections, tags and sweeper identity. The operator renames it (or
 * chooses a name that looks like no environment).
 */
export function stackNameProblem(stack: string): { key: string; value: string; message: string } | undefined {
    const lower = stack.toLowerCase();
    const preview = /^pr-0*([1-9][0-9]*)$/.exec(lower);
    const meant = ["dev", "staging", "prod", PREVIEW_TEMPLATE_STACK].includes(lower) ? lower : preview ? previewStackName(Number(preview[1])) : undefined;
    if (meant === undefined || meant === stack) return undefined;
    return {
        key: "stack name", value: stack,
        message: `reads as ${meant} but is not ${meant}, so it would be a custom stack with none of ${meant}'s ${meant === "prod" ? "protections and refusals" : "rules and tags"}; allowed: exactly ${meant}, or a name that is no case variant of dev, staging, prod or pr-<n> (lowercase, no leading zero)`,
    };
}

export function previewStackName(prNumber: number): string {
    return `pr-${prNumber}`;
}

/** The stack file a stack reads: its own, or for a preview without one, the template. */
export function stackFileName(stack: string, exists: (file: string) => boolean): string {
    const own = `Pulumi.${stack}.yaml`;
    if (exists(own) || !PREVIEW_STACK.test(stack)) return own;
    return `Pulumi.${PREVIEW_TEMPLATE_STACK}.yaml`;
}

/** Linode tags: 3 to 50 characters. */
export const LINODE_TAG_MAX = 50;
/** Every preview's resources carry this tag; the sweeper looks for it. */
export const PREVIEW_TAG = "meshstack-preview";
const PR_TAG = /^meshstack-pr-([1-9][0-9]*)$/;

export function prTag(prNumber: number): string {
    return `meshstack-pr-${prNumber}`;
}

/** The PR number a `meshstack-pr-<n>` tag names. */
export function prNumberOfTag(tag: string): number | undefined {
    const match = PR_TAG.exec(tag);
    return match ? Number(match[1]) : undefined;
}

function tagText(text: string): string {
    const cleaned = text.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/-{2,}/g, "-").replace(/^-+|-+$/g, "");
    return cleaned.slice(0, LINODE_TAG_MAX).replace(/-+$/, "");
}

/**
 * Tags on every Linode resource that takes them (instances, firewalls) and
 * on S3 buckets: project, environment, stack and, for previews, the PR. The
 * stack and PR tags let the sweeper find what a removed stack left behind.
 */
export function resourceTags(project: string, env: Environment): string[] {
    const tags = [tagText(project), tagText(`${project}-env-${env.kind}`), tagText(`${project}-stack-${env.stack}`)];
    if (env.kind === "preview") tags.push(PREVIEW_TAG);
    if (env.prNumber !== undefined) tags.push(prTag(env.prNumber));
    return [...new Set(tags)].filter((t) => t.length >= 3);
}

/** A resource's tag list as Linode takes it: no duplicates, each 3 to 50 characters. */
export function linodeTags(tags: string[]): string[] {
    return [...new Set(tags.map((t) => t.slice(0, LINODE_TAG_MAX)))].filter((t) => t.length >= 3);
}

/** `pulumi stack tag set` pairs for the workflow and the sweeper. */
export function stackTags(env: Environment): Record<string, string> {
    const tags: Record<string, string> = { "meshstack:environment": env.kind };
    if (env.prNumber !== undefined) tags["meshstack:pr"] = String(env.prNumber);
    return tags;
}

/** A config problem an environment finds; `key` is unqualified (lib/config/ qualifies it). */
export interface EnvironmentProblem {
    key: string;
    value?: string;
    message: string;
}

/** Fewer than this many NATS nodes cannot lose one and keep a RAFT majority. */
export const PROD_MIN_NATS_NODES = 3;
/** Below R3 a KV bucket loses data with the one node that holds it. */
export const PROD_MIN_KV_REPLICAS = 3;

function isWholeInternet(cidr: string): boolean {
    return cidr.endsWith("/0");
}

/**
 * Settings an environment refuses on top of the per-key rules. Prod
 * refuses what loses data or exposes it; dev and previews are where single
 * nodes and open SSH are legitimate debugging tools, but previews share one
 * account and so must not share DNS names. Each problem names the key and why.
 */
export function environmentProblems(env: Environment, values: Record<string, unknown>): EnvironmentProblem[] {
    if (env.kind === "preview" && typeof values.natsDnsDomain === "string" && values.natsDnsDomain !== "") {
        return [{
            key: "natsDnsDomain", value: values.natsDnsDomain,
            message: "is refused in a preview stack: every preview would publish the same record names in the shared domain; allowed in previews: unset",
        }];
    }
    if (env.kind !== "prod") return [];
    const problems: EnvironmentProblem[] = [];
    const nodes = values.natsNodeCount;
    if (typeof nodes === "number" && nodes < PROD_MIN_NATS_NODES) {
        problems.push({
            key: "natsNodeCount", value: String(nodes),
            message: `is refused in prod: with fewer than ${PROD_MIN_NATS_NODES} nodes losing one server stops JetStream (no RAFT majority); allowed in prod: an odd integer from ${PROD_MIN_NATS_NODES}`,
        });
    }
    const replicas = values.natsKvReplicas;
    if (typeof replicas === "number" && replicas < PROD_MIN_KV_REPLICAS) {
        problems.push({
            key: "natsKvReplicas", value: String(replicas),
            message: `is refused in prod: a KV bucket below R${PROD_MIN_KV_REPLICAS} loses its data with the node that holds it; allowed in prod: ${PROD_MIN_KV_REPLICAS} up to natsNodeCount`,
        });
    }
    const ssh = values.breakGlassSshCidrs;
    if (Array.isArray(ssh)) {
        const world = ssh.filter((c): c is string => typeof c === "string" && isWholeInternet(c));
        if (world.length) {
            problems.push({
                key: "breakGlassSshCidrs", value: JSON.stringify(ssh),
                message: `is refused in prod: ${world.join(", ")} opens tcp/22 of every node to the whole internet; allowed in prod: your own addresses, such as 203.0.113.7/32, or none`,
            });
        }
    }
    return problems;
}
