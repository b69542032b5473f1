/**
 * What the pinned Linode provider and the Linode API accept for the inputs
 * meshstack sets, each limit defined once with where it comes from.
 * lib/naming.ts builds every name within these; the mock cloud
 * (tooling/mockCloud.ts, behind the offline plan, the tests and the box)
 * refuses what the provider refuses at preview, with the provider's message,
 * so a name that breaks `pulumi preview` breaks `npm run plan` too.
 *
 * The pin: @pulumi/linode 5.1.1 bridges terraform-provider-linode v3.1.1.
 * The npm package's .d.ts carries descriptions only, no validators, so the
 * bounds below are read from that provider's Go schema; the firewall label's
 * was also confirmed by the real engine ("got: 35" for staging, issue 20).
 * A provider upgrade must re-read them.
 *
 * Pure: no Pulumi import.
 */

export interface LengthLimit {
    min: number;
    max: number;
}

/**
 * linode/instance/schema_resource.go: `label` has `ValidateFunc:
 * validation.StringLenBetween(3, 50)` and no ForceNew, so a new label is an
 * update in place (the Linode API itself allows 64).
 */
export const INSTANCE_LABEL: LengthLimit = { min: 3, max: 50 };

/**
 * linode/firewall/framework_schema_resource.go: `label` has
 * `stringvalidator.LengthBetween(3, 32)` and no RequiresReplace plan
 * modifier, so a new label is an update in place. (64 only from
 * linode/terraform-provider-linode#2095, later than v3.1.1.)
 */
export const FIREWALL_LABEL: LengthLimit = { min: 3, max: 32 };

/** Same file, `ruleNestedObject`: every inbound and outbound rule's `label`, `stringvalidator.LengthBetween(3, 32)`. */
export const FIREWALL_RULE_LABEL: LengthLimit = { min: 3, max: 32 };

/**
 * Linode API v4, ObjectStorageKeyRequest: `label` minLength 3, maxLength 50.
 * The provider sets no validator on it (linode/objkey/framework_resource_schema.go),
 * so only the API refuses, at create.
 */
export const OBJECT_STORAGE_KEY_LABEL: LengthLimit = { min: 3, max: 50 };

/**
 * Linode Object Storage bucket labels (Linode's bucket rules, the S3 naming
 * rules): 3-63 characters, lowercase letters, digits, `-` (and `.`, which
 * meshstack never uses). The provider sets no validator and marks `label`
 * ForceNew (linode/objbucket/schema_resource.go): a new name is a new bucket.
 */
export const BUCKET_NAME: LengthLimit = { min: 3, max: 63 };

/** Firewall policies and rule actions: `stringvalidator.OneOf("ACCEPT", "DROP")` (linode/firewall/framework_schema_resource.go). */
export const FIREWALL_ACTIONS = ["ACCEPT", "DROP"] as const;
/** Rule protocols in v3.1.1: `stringvalidator.OneOf(TCP, UDP, ICMP, IPENCAP)` (linodego's protocol constants). */
export const FIREWALL_PROTOCOLS = ["TCP", "UDP", "ICMP", "IPENCAP"] as const;

/**
 * Linode API v4 labels of instances: begin and end with a letter or digit,
 * only letters, digits, `-`, `_` and `.`, never two of those in a row.
 * The API refuses them at create; the provider does not check.
 */
export function linodeLabelCharsetProblem(label: string): string | undefined {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]$/.test(label)) return "must start and end with a letter or digit and use only letters, digits, - _ .";
    if (/[-_.]{2}/.test(label)) return "must not repeat - _ or . in a row";
    return undefined;
}

/** Bucket names: lowercase DNS-label form, nothing S3 reserves, not an IP address. */
export function bucketCharsetProblem(name: string): string | undefined {
    if (!/^[a-z0-9][a-z0-9-]*[a-z0-9]$/.test(name)) return "must be lowercase letters, digits and -, starting and ending with a letter or digit";
    if (/^xn--|-s3alias$|--ol-s3$/.test(name)) return "uses a prefix or suffix S3 reserves";
    return undefined;
}

/** A problem of one input, as the engine reports it: the provider's own message at preview, or the API's at create. */
export interface InputProblem {
    /** The attribute path in the provider's (Terraform) names, e.g. `inbound[0].label`. */
    attribute: string;
    message: string;
}

function lengthProblem(attribute: string, value: unknown, limit: LengthLimit, framework: boolean): InputProblem | undefined {
    if (typeof value !== "string") return undefined;
    if (value.length >= limit.min && value.length <= limit.max) return undefined;
    // The two SDKs word it differently; each message is the one its validator prints.
    return framework
        ? { attribute, message: `Invalid Attribute Value Length. Attribute ${attribute} string length must be between ${limit.min} and ${limit.max}, got: ${value.length}.` }
        : { attribute, message: `expected length of ${attribute} to be in the range (${limit.min} - ${limit.max}), got ${value}` };
}

function oneOfProblem(attribute: string, value: unknown, allowed: readonly string[]): InputProblem | undefined {
    if (value === undefined || allowed.includes(value as string)) return undefined;
    return { attribute, message: `Invalid Attribute Value Match. Attribute ${attribute} value must be one of: [${allowed.map((a) => `"${a}"`).join(" ")}], got: ${JSON.stringify(value)}` };
}

const IPV4_CIDR = /^(25[0-5]|2[0-4][0-9]|1?[0-9]{1,2})(\.(25[0-5]|2[0-4][0-9]|1?[0-9]{1,2})){3}\/([0-9]|[12][0-9]|3[0-2])$/;

function ruleProblems(direction: "inbound" | "outbound", rules: unknown): InputProblem[] {
    if (!Array.isArray(rules)) return [];
    return rules.flatMap((rule: Record<string, unknown>, i) => {
        const at = `${direction}[${i}]`;
        const problems = [
            lengthProblem(`${at}.label`, rule.label, FIREWALL_RULE_LABEL, true),
            oneOfProblem(`${at}.action`, rule.action, FIREWALL_ACTIONS),
            oneOfProblem(`${at}.protocol`, rule.protocol, FIREWALL_PROTOCOLS),
            typeof rule.ports === "string" && rule.ports.length < 1
                ? { attribute: `${at}.ports`, message: `Invalid Attribute Value Length. Attribute ${at}.ports string length must be at least 1, got: 0.` }
                : undefined,
        ];
        for (const [list, family] of [["ipv4s", "ipv4"], ["ipv6s", "ipv6"]] as const) {
            const cidrs = rule[list];
            if (!Array.isArray(cidrs)) continue;
            if (cidrs.length < 1) problems.push({ attribute: `${at}.${family}`, message: `Invalid Attribute Value. Attribute ${at}.${family} list must contain at least 1 elements, got: 0` });
            cidrs.forEach((cidr, j) => {
                const valid = family === "ipv4" ? IPV4_CIDR.test(String(cidr)) : typeof cidr === "string" && cidr.includes(":") && /\/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8])$/.test(cidr);
                if (typeof cidr === "string" && !valid) {
                    problems.push({ attribute: `${at}.${family}[${j}]`, message: `Invalid ${family === "ipv4" ? "IPv4" : "IPv6"} CIDR String Value. A string value was provided that is not valid ${family === "ipv4" ? "IPv4" : "IPv6"} CIDR string format. Given Value: ${cidr}` });
                }
            });
        }
        return problems.filter((p): p is InputProblem => p !== undefined);
    });
}

/**
 * What terraform-provider-linode v3.1.1 refuses at plan (so `pulumi preview`
 * fails) for the inputs meshstack sets, by Pulumi type. Inputs are as the
 * provider gets them (secrets unwrapped); a value not known yet is never a
 * problem, as the provider's validators skip unknowns too.
 */
export function providerInputProblems(type: string, inputs: Record<string, unknown>, isUnknown: (v: unknown) => boolean = () => false): InputProblem[] {
    const known = (v: unknown) => (isUnknown(v) ? undefined : v);
    switch (type) {
        case "linode:index/instance:Instance":
            return [lengthProblem("label", known(inputs.label), INSTANCE_LABEL, false)].filter((p): p is InputProblem => p !== undefined);
        case "linode:index/firewall:Firewall":
            return [
                lengthProblem("label", known(inputs.label), FIREWALL_LABEL, true),
                oneOfProblem("inbound_policy", known(inputs.inboundPolicy), FIREWALL_ACTIONS),
                oneOfProblem("outbound_policy", known(inputs.outboundPolicy), FIREWALL_ACTIONS),
            ].filter((p): p is InputProblem => p !== undefined)
                .concat(ruleProblems("inbound", known(inputs.inbounds)), ruleProblems("outbound", known(inputs.outbounds)));
        default:
            return [];
    }
}

/**
 * What the Linode API refuses at create for the inputs meshstack sets: the
 * provider passes these through unchecked, so a preview succeeds and the
 * `up` fails. The mock cloud refuses them too, before anything is made.
 */
export function apiInputProblems(type: string, inputs: Record<string, unknown>, isUnknown: (v: unknown) => boolean = () => false): InputProblem[] {
    const text = (v: unknown) => (typeof v === "string" && !isUnknown(v) ? v : undefined);
    const problems: (InputProblem | undefined)[] = [];
    const charset = (attribute: string, value: string | undefined, check: (s: string) => string | undefined) => {
        const problem = value === undefined ? undefined : check(value);
        if (problem) problems.push({ attribute, message: `${attribute} ${JSON.stringify(value)} ${problem}` });
    };
    const length = (attribute: string, value: string | undefined, limit: LengthLimit) => {
        if (value !== undefined && (value.length < limit.min || value.length > limit.max)) {
            problems.push({ attribute, message: `${attribute} ${JSON.stringify(value)} is ${value.length} characters; allowed: ${limit.min}-${limit.max}` });
        }
    };
    switch (type) {
        case "linode:index/instance:Instance":
            charset("label", text(inputs.label), linodeLabelCharsetProblem);
            break;
        case "linode:index/objectStorageKey:ObjectStorageKey":
            length("label", text(inputs.label), OBJECT_STORAGE_KEY_LABEL);
            break;
        case "linode:index/objectStorageBucket:ObjectStorageBucket":
            length("label", text(inputs.label), BUCKET_NAME);
            charset("label", text(inputs.label), bucketCharsetProblem);
            break;
    }
    return problems.filter((p): p is InputProblem => p !== undefined);
}
