/**
 * Every physical name comes from here. Linode labels and bucket names follow
 * different rules, and stacks of several projects may share one account, so
 * a name must (1) be valid for its resource type, under the limits the pinned
 * provider enforces at preview and the ones the Linode API enforces at create
 * (lib/linodeLimits.ts), (2) be the same on every `up` of a stack, and (3)
 * differ between any two (project, stack) pairs.
 *
 * Form: `<readable>-<stack id>-<role>`.
 * - stack id: a short hash of the exact (project, stack) pair. Joining the
 *   two with "-" is ambiguous (project `meshstack-pr` with stack `12`, and
 *   `meshstack` with `pr-12`, spell the same text); the hash of the pair is not.
 * - readable: project and stack in the common form, shortened to what the
 *   type's limit leaves: the project first, so the stack stays whole where it fits.
 * - role: the program's name for the resource, verbatim, so two roles of one
 *   stack never meet.
 * The common form is lowercase `[a-z0-9-]`, starting with a letter, ending
 * with a letter or digit, no doubled dashes: a valid Linode label and a valid
 * bucket name.
 *
 * What `<stack>-<stack id>` inside a name proves is what the sweeper relies on
 * (namedForStack): only lib/naming makes it for that exact pair.
 */
import * as crypto from "crypto";
import { BUCKET_NAME, FIREWALL_LABEL, INSTANCE_LABEL, OBJECT_STORAGE_KEY_LABEL, bucketCharsetProblem, linodeLabelCharsetProblem } from "./linodeLimits";

/** Length of the random suffix on globally unique names and replaceable labels. */
export const RANDOM_SUFFIX_LENGTH = 6;
/** Hex digits of the stack id: 24 bits, one accidental match in about 16 million pairs. */
export const STACK_ID_LENGTH = 6;

export interface NamingContext {
    project: string;
    stack: string;
}

/** The hash of the exact pair: JSON keeps ("a-b", "c") and ("a", "b-c") apart. */
export function stackId(ctx: NamingContext): string {
    return crypto.createHash("sha256").update(JSON.stringify([ctx.project, ctx.stack])).digest("hex").slice(0, STACK_ID_LENGTH);
}

function clean(text: string): string {
    return text
        .toLowerCase()
        .replace(/[^a-z0-9-]+/g, "-")
        .replace(/-{2,}/g, "-")
        .replace(/^-+|-+$/g, "");
}

/**
 * Project and stack in the common form within `room` characters: both when
 * they fit; else the stack whole behind as much of the project as fits;
 * else the stack's start. Always starts with a letter (an `m` is put in
 * front of what does not).
 */
export function readablePrefix(ctx: NamingContext, room: number): string {
    const project = clean(ctx.project);
    const stack = clean(ctx.stack);
    let text = [project, stack].filter((part) => part !== "").join("-");
    if (text.length > room) {
        const projectRoom = room - stack.length - 1;
        text = projectRoom > 0 && project !== "" ? `${project.slice(0, projectRoom)}-${stack}` : stack.slice(0, room);
    }
    text = clean(text);
    if (!/^[a-z]/.test(text)) text = clean(`m-${text}`.slice(0, room));
    return text;
}

/**
 * `<readable>-<stack id>-<role>` of at most `max` characters. The role is
 * the program's own (a component name): it must already be in the common
 * form and leave room for the rest; a role that does not is a program error.
 */
export function physicalName(ctx: NamingContext, role: string, max: number): string {
    const room = max - STACK_ID_LENGTH - role.length - 2;
    if (clean(role) !== role || role === "" || room < 1) {
        throw new Error(`naming: role ${JSON.stringify(role)} does not fit a name of at most ${max} characters; allowed: lowercase [a-z0-9-] without leading, trailing or doubled dashes, at most ${max - STACK_ID_LENGTH - 3} characters`);
    }
    return `${readablePrefix(ctx, room)}-${stackId(ctx)}-${role}`;
}

/**
 * Base of a Linode instance label, leaving room for the random suffix the
 * component adds (see labelWithSuffix).
 */
export function instanceLabelBase(ctx: NamingContext, role: string): string {
    return physicalName(ctx, role, INSTANCE_LABEL.max - RANDOM_SUFFIX_LENGTH - 1);
}

/** A Linode firewall's label: its own, shorter limit. */
export function firewallLabel(ctx: NamingContext, role: string): string {
    return physicalName(ctx, role, FIREWALL_LABEL.max);
}

/** An Object Storage key's label. */
export function objectStorageKeyLabel(ctx: NamingContext, role: string): string {
    return physicalName(ctx, role, OBJECT_STORAGE_KEY_LABEL.max);
}

/** Bucket names are global: the base leaves room for a random suffix. */
export function bucketNameBase(ctx: NamingContext, role: string): string {
    return physicalName(ctx, role, BUCKET_NAME.max - RANDOM_SUFFIX_LENGTH - 1);
}

/**
 * Linode labels are unique per account, so a replacement instance created
 * before its predecessor is deleted needs a new label: the suffix comes from
 * a random resource whose keepers are the instance's replacement triggers.
 */
export function labelWithSuffix(base: string, suffix: string): string {
    return `${base}-${suffix}`;
}

/**
 * Whether `name` was made here for exactly this (project, stack): it holds
 * the stack whole, right before the pair's id, at the start or after a dash.
 * Another pair's names hold another id; a stack that merely starts the same
 * (`pr-12-hotfix` for `pr-12`) is followed by something other than the id.
 */
export function namedForStack(name: string, ctx: NamingContext): boolean {
    const marker = `${clean(ctx.stack)}-${stackId(ctx)}-`;
    return name.startsWith(marker) || name.includes(`-${marker}`);
}

function limitProblem(name: string, limit: { min: number; max: number }): string | undefined {
    return name.length < limit.min || name.length > limit.max ? `length ${name.length} is outside ${limit.min}-${limit.max}` : undefined;
}

/** Why `label` is not a valid instance label (the provider's length, the API's characters), or undefined. */
export function instanceLabelProblem(label: string): string | undefined {
    return limitProblem(label, INSTANCE_LABEL) ?? linodeLabelCharsetProblem(label);
}

/** Why `label` is not a valid firewall label, or undefined. */
export function firewallLabelProblem(label: string): string | undefined {
    return limitProblem(label, FIREWALL_LABEL) ?? linodeLabelCharsetProblem(label);
}

/** Why `label` is not a valid Object Storage key label, or undefined. */
export function objectStorageKeyLabelProblem(label: string): string | undefined {
    return limitProblem(label, OBJECT_STORAGE_KEY_LABEL) ?? linodeLabelCharsetProblem(label);
}

export function bucketNameProblem(name: string): string | undefined {
    return limitProblem(name, BUCKET_NAME) ?? bucketCharsetProblem(name);
}
