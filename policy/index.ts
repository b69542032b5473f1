/**
 * meshstack's policy pack: `pulumi preview --policy-pack policy` (and `up`).
 * The rules live in rules.ts as pure functions, so the offline plan and the
 * tests run exactly what the engine runs here.
 */
import { EnforcementLevel, PolicyPack, ResourceValidationArgs, ResourceValidationPolicy } from "@pulumi/policy";
import { CheckedResource, DEFAULT_POLICY_CONFIG, instanceFirewallViolations, POLICY_NAMES, PolicyConfig, prodProtectViolations,
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

new PolicyPack("meshstack", {
    enforcementLevel,
    policies: [
        policy(POLICY_NAMES.publicStorage, "No bucket or object is public: nodes reach the bucket with presigned URLs.", publicStorageViolations),
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
    ],
});
