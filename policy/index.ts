/**
 * meshstack's policy pack: `pulumi preview --policy-pack policy` (and `up`).
 * The rules live in rules.ts as pure functions, so the offline plan and the
 * tests run exactly what the engine runs here.
 */
import { EnforcementLevel, PolicyPack, ResourceValidationArgs, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { CheckedResource, DEFAULT_POLICY_CONFIG, instanceFirewallSourceViolations, instanceFirewallViolations, POLICY_NAMES, PolicyConfig, prodProtectViolations,
    publicStorageViolations, userDataSecretViolations, Violation, worldInboundViolations } from "./rules";

const enforcementLevel: EnforcementLevel = "mandatory";

function checked(args: ResourceValidationArgs): CheckedResource {
    return {
        type: args.type, name: args.name, urn: args.urn, props: args.props,
        opts: { protect: args.opts.protect, additionalSecretOutputs: args.opts.additionalSecretOutputs ?? [] },
    };
}

function policy(name: string, description: string, rule: (r: CheckedResource, config: PolicyConfig) => Violation[], configSchema?: ResourceValidationPolicy["configSchema"]): ResourceValidationPolicy {
    return {
        name, description, enforcementLevel, configSchema,
        validateResource: (args, reportViolation) => {
            const config = { ...DEFAULT_POLICY_CONFIG, ...(configSchema ? args.getConfig<Partial<PolicyConfig>>() : {}) };
            for (const violation of rule(checked(args), config)) reportViolation(violation);
        },
    };
}

/**
 * Stack rules get every resource with what feeds each of its inputs, which a
 * preview knows even where the values are not known; this one reads nothing else.
 */
const instanceFirewallSource: StackValidationPolicy = {
    name: POLICY_NAMES.instanceFirewallSource,
    description: "Every instance's firewallId comes from a Linode firewall; decided at preview too, where the id itself is not known.",
    enforcementLevel,
    validateStack: (args, reportViolation) => {
        const urns = new Map(args.resources.map((r) => [r.name, r.urn]));
        const views = args.resources.map((r) => ({
            type: r.type,
            name: r.name,
            propertyDependencies: Object.fromEntries(Object.entries(r.propertyDependencies).map(([key, deps]) => [key, deps.map((d) => ({ type: d.type, name: d.name }))])),
        }));
        for (const v of instanceFirewallSourceViolations(views)) reportViolation(v.message, urns.get(v.resource));
    },
};

new PolicyPack("meshstack", {
    enforcementLevel,
    policies: [
        policy(POLICY_NAMES.publicStorage, "No bucket or object is public: nodes reach the bucket with presigned URLs.", publicStorageViolations),
        // Reads firewallId: at preview of a new firewall the runtime skips it (the id is not known); checked at up.
        policy(POLICY_NAMES.instanceFirewall, "Every instance is created behind a firewall.", instanceFirewallViolations),
        policy(POLICY_NAMES.worldInbound, "No inbound rule is open to the world except WireGuard (and the NATS client port where a stack says so).",
            worldInboundViolations, {
                properties: {
                    wireguardPorts: { type: "array", items: { type: "integer" }, default: DEFAULT_POLICY_CONFIG.wireguardPorts },
                    natsClientPort: { type: "integer", default: DEFAULT_POLICY_CONFIG.natsClientPort },
                    allowWorldNatsClient: { type: "boolean", default: DEFAULT_POLICY_CONFIG.allowWorldNatsClient },
                },
            }),
        policy(POLICY_NAMES.userDataSecret, "Every instance's user-data is a secret in state.", userDataSecretViolations),
        policy(POLICY_NAMES.prodProtect, "In prod, every resource that holds state is protected.", prodProtectViolations),
        instanceFirewallSource,
    ],
});
