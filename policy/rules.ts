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
    /** Inputs as a policy pack sees them: secrets unwrapped; unknowns (previews) as the SDK's sentinel. */
    props: Record<string, any>;
    opts: { protect: boolean; additionalSecretOutputs: string[] };
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
    return typeof value === "number" || value === UNKNOWN || (typeof value === "string" && /^[0-9]+$/.test(value));
}

/**
 * Every instance is created behind a firewall: firewallId at creation, so it
 * is filtered from its first boot, before cloud-init opens anything. A
 * firewall attached later (a device, a firewall's linodes list) leaves that
 * window open, so it does not count.
 */
export function instanceFirewallViolations(r: CheckedResource): Violation[] {
    if (r.type !== TYPES.instance || attached(r.props.firewallId)) return [];
    return [`instance ${r.name} has no firewall at creation; set firewallId`];
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
    worldInbound: "meshstack-no-world-inbound",
    userDataSecret: "meshstack-user-data-secret",
    prodProtect: "meshstack-prod-protects-state",
} as const;

/** Every rule over a whole stack, for the offline plan and the tests. */
export function checkStack(resources: CheckedResource[], config: PolicyConfig = DEFAULT_POLICY_CONFIG): PolicyResult[] {
    const results: PolicyResult[] = [];
    const perResource: [string, (r: CheckedResource) => Violation[]][] = [
        [POLICY_NAMES.publicStorage, publicStorageViolations],
        [POLICY_NAMES.instanceFirewall, instanceFirewallViolations],
        [POLICY_NAMES.worldInbound, (r) => worldInboundViolations(r, config)],
        [POLICY_NAMES.userDataSecret, userDataSecretViolations],
        [POLICY_NAMES.prodProtect, prodProtectViolations],
    ];
    for (const r of resources) {
        for (const [policy, rule] of perResource) for (const message of rule(r)) results.push({ policy, resource: r.name, message });
    }
    return results;
}
