/**
 * The rules every meshstack stack must pass, as pure functions over what a
 * policy pack sees of a resource (type, name, URN, inputs with secrets
 * unwrapped, options). index.ts wraps them into a PolicyPack for
 * `pulumi preview --policy-pack policy`; the offline plan and the tests run
 * the same functions over the mock cloud's recorded resources.
 *
 * Dynamic resources reach a policy pack as `pulumi-nodejs:dynamic:Resource`
 * (or `pulumi-nodejs:dynamic/<module>:<type>` when the provider names
 * itself), so rules that need one kind of dynamic resource recognize it by
 * its type suffix or, failing that, by the shape of its inputs.
 */
import { environmentOf } from "../lib/environments";
import { NATS_WG_LISTEN_PORT } from "../lib/topology";
import { UNKNOWN } from "../providers/unknowns";

export interface CheckedResource {
    type: string;
    name: string;
    urn: string;
    /**
     * Inputs as a policy pack sees them: secrets unwrapped; unknowns (previews)
     * as the SDK's sentinel. The real runtime never hands a rule that
     * sentinel: reading it throws and the rule is skipped (see asRuntimeSees).
     */
    props: Record<string, any>;
    opts: { protect: boolean; additionalSecretOutputs: string[] };
    /** Names of the resources whose outputs feed each input (known at preview, whatever the values). */
    propertyDependencies?: Record<string, string[]>;
}

/**
 * @pulumi/policy's UnknownValueError, as the runtime raises it when a rule
 * reads a value not known during preview; the runtime then skips the rule
 * with an advisory "can't run policy ... during preview: <this message>".
 */
export class PreviewUnknownError extends Error {
    constructor(path: string[]) {
        super(`string value at .${path.join(".")} can't be known during preview`);
        this.name = "PreviewUnknownError";
    }
}

/**
 * Props as the real policy runtime hands them to a rule (its
 * unknownCheckingProxy): every read of a value not known yet throws instead
 * of returning a sentinel. Checking whether a key is there (`in`) reads nothing.
 */
export function asRuntimeSees<T>(value: T, path: string[] = []): T {
    if (value === null || typeof value !== "object") return value;
    return new Proxy(value as unknown as object, {
        get(target, prop) {
            const field = (target as Record<PropertyKey, unknown>)[prop];
            if (typeof prop !== "string") return field;
            if (field === UNKNOWN) throw new PreviewUnknownError([...path, prop]);
            return asRuntimeSees(field, [...path, prop]);
        },
    }) as T;
}

export interface PolicyConfig {
    /** UDP ports WireGuard listens on: the one inbound service open to the world. */
    wireguardPorts: number[];
    /** The NATS client port, open to the world only when allowWorldNatsClient is set. */
    natsClientPort: number;
    /** A stack whose natsClientCidrs include 0.0.0.0/0 or ::/0 says so here. */
    allowWorldNatsClient: boolean;
}

export const DEFAULT_POLICY_CONFIG: PolicyConfig = { wireguardPorts: [51820], natsClientPort: 4222, allowWorldNatsClient: false };

/**
 * The pack's config for one stack, from what the stack's own config says:
 * its WireGuard port, and whether its natsClientCidrs open the client port
 * to the world. The offline plan writes it (out/<stack>/policy-config.json,
 * in packConfigFile's form) for `--policy-pack-config`.
 */
export function policyConfigForStack(stack: { wireguardPort: number; natsClientCidrs: string[] }): PolicyConfig {
    // The hub listens on the stack's port; the NATS nodes always on NATS_WG_LISTEN_PORT, so both are WireGuard.
    return { ...DEFAULT_POLICY_CONFIG, wireguardPorts: [...new Set([stack.wireguardPort, NATS_WG_LISTEN_PORT])], allowWorldNatsClient: stack.natsClientCidrs.some(isWorld) };
}

/** `--policy-pack-config` JSON: config per policy name. */
export function packConfigFile(config: PolicyConfig): Record<string, PolicyConfig> {
    return { [POLICY_NAMES.worldInbound]: config };
}


export const TYPES = {
    instance: "linode:index/instance:Instance",
    firewall: "linode:index/firewall:Firewall",
    linodeBucket: "linode:index/objectStorageBucket:ObjectStorageBucket",
    linodeObject: "linode:index/objectStorageObject:ObjectStorageObject",
    s3Bucket: "aws:s3/bucket:Bucket",
    s3BucketV2: "aws:s3/bucketV2:BucketV2",
    s3BucketAcl: "aws:s3/bucketAclV2:BucketAclV2",
    s3BucketPolicy: "aws:s3/bucketPolicy:BucketPolicy",
    s3Object: "aws:s3/bucketObject:BucketObject",
    s3ObjectV2: "aws:s3/bucketObjectv2:BucketObjectv2",
    proxmoxVm: "proxmoxve:VM/virtualMachine:VirtualMachine",
} as const;

const DYNAMIC_GENERIC = "pulumi-nodejs:dynamic:Resource";
const DYNAMIC_NAMED = /^pulumi-nodejs:dynamic\/[^:]+:(.+)$/;

/** Which of the program's dynamic providers a resource comes from, when it is dynamic. */
export function dynamicKind(resource: Pick<CheckedResource, "type" | "props">): string | undefined {
    const named = DYNAMIC_NAMED.exec(resource.type);
    if (named) return named[1];
    if (resource.type !== DYNAMIC_GENERIC) return undefined;
    const p = resource.props;
    if ("servers" in p && "replicas" in p && "bucket" in p) return "JetStreamKv";
    if ("content" in p && "store" in p) return "BootstrapObject";
    if ("method" in p && "expiresInSeconds" in p) return "PresignedUrl";
    if ("vmid" in p || "goldenImage" in p) return "GoldenGuest";
    return "unknown";
}

/** `urn:pulumi:<stack>::<project>::<type>::<name>` */
export function stackOfUrn(urn: string): string {
    return urn.replace(/^urn:pulumi:/, "").split("::")[0];
}

export type Violation = string;

const PUBLIC_ACLS = new Set(["public-read", "public-read-write", "authenticated-read"]);

export function publicStorageViolations(r: CheckedResource): Violation[] {
    const acl = typeof r.props.acl === "string" ? r.props.acl : undefined;
    const publicAcl = acl !== undefined && PUBLIC_ACLS.has(acl);
    switch (r.type) {
        case TYPES.linodeBucket:
        case TYPES.linodeObject:
        case TYPES.s3Bucket:
        case TYPES.s3BucketV2:
        case TYPES.s3Object:
        case TYPES.s3ObjectV2:
            return publicAcl ? [`acl ${acl} makes ${r.name} readable without a key; use private and presigned URLs`] : [];
        case TYPES.s3BucketAcl:
            return publicAcl ? [`acl ${acl} makes the bucket readable without a key`] : [];
        case TYPES.s3BucketPolicy: {
            const text = typeof r.props.policy === "string" ? r.props.policy : JSON.stringify(r.props.policy ?? "");
            return /"Principal"\s*:\s*("\*"|\{\s*"AWS"\s*:\s*"\*"\s*\})/.test(text) ? ["a bucket policy granting Principal * makes the bucket public"] : [];
        }
    }
    if (dynamicKind(r) && publicAcl) return [`acl ${acl} makes the object ${r.name} public`];
    return [];
}

function attached(value: unknown): boolean {
    return typeof value === "number" || (typeof value === "string" && /^[0-9]+$/.test(value));
}

/**
 * Every instance is created behind a firewall: firewallId at creation, so it
 * is filtered from its first boot, before cloud-init opens anything. A
 * firewall attached later (a device, a firewall's linodes list) leaves that
 * window open, so it does not count.
 *
 * An instance without firewallId fails at preview already (the key's absence
 * is known). The id itself is not known in a preview of a new firewall: the
 * runtime skips this rule there, and instanceFirewallSourceViolations (a
 * stack rule that reads no value) covers the preview; the id is checked at `up`.
 */
export function instanceFirewallViolations(r: CheckedResource): Violation[] {
    if (r.type !== TYPES.instance) return [];
    if (!("firewallId" in r.props) || !attached(r.props.firewallId)) return [`instance ${r.name} has no firewall at creation; set firewallId`];
    return [];
}

/** What a stack rule reads of a resource: its type and what feeds its inputs, never their values. */
export interface StackView {
    type: string;
    name: string;
    /** The resources whose outputs feed each input. */
    propertyDependencies: Record<string, { type: string; name: string }[]>;
}

/**
 * At preview too: an instance whose firewallId is fed by resources must be
 * fed by a Linode firewall's id. Reads only types and dependencies, which
 * the runtime knows in a preview of a fresh stack, so it is never skipped.
 * A firewallId fed by nothing is a literal, checked by instanceFirewallViolations.
 */
export function instanceFirewallSourceViolations(resources: StackView[]): { resource: string; message: Violation }[] {
    return resources.flatMap((r) => {
        if (r.type !== TYPES.instance) return [];
        const feeders = r.propertyDependencies.firewallId ?? [];
        if (feeders.length === 0 || feeders.some((f) => f.type === TYPES.firewall)) return [];
        return [{ resource: r.name, message: `instance ${r.name} takes its firewallId from ${feeders.map((f) => `${f.name} (${f.type})`).join(", ")}, not from a ${TYPES.firewall}` }];
    });
}

function isWorld(cidr: unknown): boolean {
    return typeof cidr === "string" && cidr.endsWith("/0");
}

export function worldInboundViolations(r: CheckedResource, config: PolicyConfig = DEFAULT_POLICY_CONFIG): Violation[] {
    if (r.type !== TYPES.firewall) return [];
    const violations: Violation[] = [];
    if (r.props.inboundPolicy !== "DROP") {
        violations.push(`inboundPolicy ${JSON.stringify(r.props.inboundPolicy)} admits everything no rule names; allowed: DROP`);
    }
    for (const rule of (r.props.inbounds ?? []) as Record<string, unknown>[]) {
        if (rule.action !== "ACCEPT") continue;
        const sources = [...((rule.ipv4s as unknown[]) ?? []), ...((rule.ipv6s as unknown[]) ?? [])];
        if (!sources.some(isWorld)) continue;
        const protocol = String(rule.protocol ?? "").toUpperCase();
        const ports = String(rule.ports ?? "");
        const wireguard = protocol === "UDP" && config.wireguardPorts.map(String).includes(ports);
        const natsClient = config.allowWorldNatsClient && protocol === "TCP" && ports === String(config.natsClientPort);
        if (!wireguard && !natsClient) {
            violations.push(`inbound rule ${JSON.stringify(rule.label ?? "")} (${protocol || "any protocol"} ${ports || "all ports"}) is open to the whole internet; only WireGuard (UDP ${config.wireguardPorts.join(", ")}) may be`);
        }
    }
    return violations;
}

/** User-data carries keys, passwords and presigned URLs: it must be a secret in state. */
export function userDataSecretViolations(r: CheckedResource): Violation[] {
    // Options first: during a preview user-data is unknown, and reading an
    // unknown makes the pack's host skip the rule as inconclusive.
    if (r.type !== TYPES.instance || r.opts.additionalSecretOutputs.includes("metadatas")) return [];
    const metadatas = (r.props.metadatas ?? []) as { userData?: unknown }[];
    const hasUserData = metadatas.some((m) => m && m.userData !== undefined);
    if (!hasUserData) return [];
    return [`instance ${r.name} carries user-data that is not secret; register it with additionalSecretOutputs: ["metadatas"] and a secret input`];
}

/** What holds state: losing one loses data no `up` brings back. */
export function isStateful(r: CheckedResource): boolean {
    switch (r.type) {
        case TYPES.linodeBucket:
        case TYPES.s3Bucket:
        case TYPES.s3BucketV2:
        case TYPES.proxmoxVm:
            return true;
        case TYPES.instance:
            return ((r.props.tags ?? []) as unknown[]).includes("nats");
    }
    const kind = dynamicKind(r);
    return kind === "JetStreamKv" || kind === "GoldenGuest";
}

export function prodProtectViolations(r: CheckedResource): Violation[] {
    if (!environmentOf(stackOfUrn(r.urn)).protectState || !isStateful(r) || r.opts.protect) return [];
    return [`${r.name} holds state in a prod stack and must be protected (protect: true)`];
}

export interface PolicyResult {
    policy: string;
    resource: string;
    message: string;
}

export const POLICY_NAMES = {
    publicStorage: "meshstack-no-public-storage",
    instanceFirewall: "meshstack-instance-has-firewall",
    instanceFirewallSource: "meshstack-instance-firewall-from-firewall",
    worldInbound: "meshstack-no-world-inbound",
    userDataSecret: "meshstack-user-data-secret",
    prodProtect: "meshstack-prod-protects-state",
} as const;

/** A stack's resources as stack rules see them: dependencies by name, resolved to the resources' types. */
export function stackViews(resources: CheckedResource[]): StackView[] {
    const types = new Map(resources.map((r) => [r.name, r.type]));
    return resources.map((r) => ({
        type: r.type,
        name: r.name,
        propertyDependencies: Object.fromEntries(Object.entries(r.propertyDependencies ?? {}).map(([key, names]) =>
            [key, names.filter((n) => types.has(n)).map((n) => ({ name: n, type: types.get(n)! }))])),
    }));
}

export interface PolicyReport {
    violations: PolicyResult[];
    /** Rules the runtime could not run on a resource: they read a value not known at preview. */
    skipped: PolicyResult[];
}

/**
 * Every rule over a whole stack, as the policy runtime runs them, for the
 * offline plan and the tests: each resource rule gets the props through
 * asRuntimeSees, and one that reads a value not known yet is skipped with
 * the runtime's advisory message, not run on a sentinel.
 */
export function runPolicies(resources: CheckedResource[], config: PolicyConfig = DEFAULT_POLICY_CONFIG): PolicyReport {
    const report: PolicyReport = { violations: [], skipped: [] };
    const perResource: [string, (r: CheckedResource) => Violation[]][] = [
        [POLICY_NAMES.publicStorage, publicStorageViolations],
        [POLICY_NAMES.instanceFirewall, instanceFirewallViolations],
        [POLICY_NAMES.worldInbound, (r) => worldInboundViolations(r, config)],
        [POLICY_NAMES.userDataSecret, userDataSecretViolations],
        [POLICY_NAMES.prodProtect, prodProtectViolations],
    ];
    for (const r of resources) {
        const seen = { ...r, props: asRuntimeSees(r.props) };
        for (const [policy, rule] of perResource) {
            try {
                for (const message of rule(seen)) report.violations.push({ policy, resource: r.name, message });
            } catch (err) {
                if (!(err instanceof PreviewUnknownError)) throw err;
                report.skipped.push({ policy, resource: r.name, message: `can't run policy '${policy}' during preview: ${err.message}` });
            }
        }
    }
    for (const v of instanceFirewallSourceViolations(stackViews(resources))) report.violations.push({ policy: POLICY_NAMES.instanceFirewallSource, ...v });
    return report;
}

/** The violations of runPolicies: what fails a plan. */
export function checkStack(resources: CheckedResource[], config: PolicyConfig = DEFAULT_POLICY_CONFIG): PolicyResult[] {
    return runPolicies(resources, config).violations;
}
