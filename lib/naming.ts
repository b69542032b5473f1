/**
 * Every physical name comes from here. Linode labels and bucket names follow
 * different rules, and per-PR preview stacks of one project share an
 * account, so a name must (1) be valid under both rule sets, (2) be the same
 * on every `up` of a stack, and (3) differ between any two stacks.
 *
 * The common form is lowercase `[a-z0-9-]`, starting with a letter, ending
 * with a letter or digit, no doubled dashes: valid as a Linode label and as
 * an S3/Linode bucket name. Whenever cleaning or shortening changed the input,
 * a short hash of the original is appended, so "pr_12" and "pr-12" can never
 * land on one name.
 */
import * as crypto from "crypto";

/** Linode labels: 3-64 chars, alnum at both ends, no repeated separators. */
export const LINODE_LABEL_MAX = 64;
/** S3 and Linode Object Storage bucket names: 3-63 chars, lowercase DNS label form. */
export const BUCKET_NAME_MAX = 63;
/** Length of the random suffix on globally unique names and replaceable labels. */
export const RANDOM_SUFFIX_LENGTH = 6;
const HASH_LENGTH = 6;

export interface NamingContext {
    project: string;
    stack: string;
}

function shortHash(text: string): string {
    return crypto.createHash("sha256").update(text).digest("hex").slice(0, HASH_LENGTH);
}

function clean(text: string): string {
    return text
        .toLowerCase()
        .replace(/[^a-z0-9-]+/g, "-")
        .replace(/-{2,}/g, "-")
        .replace(/^-+|-+$/g, "");
}

/**
 * `project-stack-role` in the common form, at most `max` characters. The
 * hash covers the exact inputs, so distinct (project, stack, role) triples
 * never share a name even after cleaning or truncation.
 */
export function physicalName(ctx: NamingContext, role: string, max: number): string {
    const original = `${ctx.project}-${ctx.stack}-${role}`;
    let name = clean(original);
    if (!/^[a-z]/.test(name)) name = `m-${name}`;
    if (name === original && name.length <= max) return name;
    const room = max - HASH_LENGTH - 1;
    const head = name.slice(0, room).replace(/-+$/, "");
    return `${head}-${shortHash(original)}`;
}

/**
 * Base of a Linode instance label, leaving room for the random suffix the
 * component adds (see labelWithSuffix).
 */
export function linodeLabelBase(ctx: NamingContext, role: string): string {
    return physicalName(ctx, role, LINODE_LABEL_MAX - RANDOM_SUFFIX_LENGTH - 1);
}

/** A label for a Linode resource that is never replaced in place (firewalls, keys). */
export function linodeLabel(ctx: NamingContext, role: string): string {
    return physicalName(ctx, role, LINODE_LABEL_MAX);
}

/** Bucket names are global: the base leaves room for a random suffix. */
export function bucketNameBase(ctx: NamingContext, role: string): string {
    return physicalName(ctx, role, BUCKET_NAME_MAX - RANDOM_SUFFIX_LENGTH - 1);
}

/**
 * Linode labels are unique per account, so a replacement instance created
 * before its predecessor is deleted needs a new label: the suffix comes from
 * a random resource whose keepers are the instance's replacement triggers.
 */
export function labelWithSuffix(base: string, suffix: string): string {
    return `${base}-${suffix}`;
}

export function linodeLabelProblem(label: string): string | undefined {
    if (label.length < 3 || label.length > LINODE_LABEL_MAX) return `length ${label.length} is outside 3-${LINODE_LABEL_MAX}`;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]$/.test(label)) return "must start and end with a letter or digit and use only letters, digits, - _ .";
    if (/[-_.]{2}/.test(label)) return "must not repeat - _ or . in a row";
    return undefined;
}

export function bucketNameProblem(name: string): string | undefined {
    if (name.length < 3 || name.length > BUCKET_NAME_MAX) return `length ${name.length} is outside 3-${BUCKET_NAME_MAX}`;
    if (!/^[a-z0-9][a-z0-9-]*[a-z0-9]$/.test(name)) return "must be lowercase letters, digits and -, starting and ending with a letter or digit";
    if (/^xn--|-s3alias$|--ol-s3$/.test(name)) return "uses a prefix or suffix S3 reserves";
    return undefined;
}
