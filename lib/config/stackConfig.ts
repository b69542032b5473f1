/**
 * The whole stack: every key parsed alone, then the rules that relate keys,
 * the catalog, the stack's environment and Proxmox's, all into one report;
 * a StackConfig only when none of them found a problem.
 */
import { environmentOf, environmentProblems, stackNameProblem } from "../environments";
import { redactPrivateKeys } from "../secretText";
import { AccessConfig, accessConfig } from "./access";
import { BootstrapConfig, bootstrapConfig, urlLifetimeRule } from "./bootstrap";
import { catalogRules, catalogWarnings } from "./catalog";
import { CheckedValues, CrossKeyRule } from "./keySpec";
import { LifecycleConfig, lifecycleConfig } from "./lifecycle";
import { clientCaPairRule, kvReplicasRule, NatsConfig, natsConfig, natsNodeImagesRule, natsServerChecksumsRule, needsClientPort } from "./nats";
import { ObjectStoreConfig, objectStoreConfig, s3AgentKeyRule, s3EndpointRule } from "./objectStore";
import { parseKeys, RawConfig } from "./parseKeys";
import { ProxmoxConfig, proxmoxConfig, proxmoxRules } from "./proxmox";
import { qualify, Result } from "./report";
import { operatorKeyWarnings, operatorPeersRule, WgCacheConfig, wgAddressPlanRule, wgCacheConfig } from "./wireguard";

export interface StackConfig {
    region: string;
    access: AccessConfig;
    objectStore: ObjectStoreConfig;
    bootstrap: BootstrapConfig;
    wgCache: WgCacheConfig;
    nats: NatsConfig;
    lifecycle: LifecycleConfig;
    proxmox?: ProxmoxConfig;
}

/** Rules that relate two or more keys; each checked only when its inputs parsed. */
const CROSS_KEY_RULES: CrossKeyRule[] = [
    urlLifetimeRule,
    s3EndpointRule,
    s3AgentKeyRule,
    kvReplicasRule,
    clientCaPairRule,
    needsClientPort("natsKvBucket", "unset"),
    needsClientPort("natsRejoinTimeoutSeconds", "0"),
    wgAddressPlanRule,
    operatorPeersRule,
    natsNodeImagesRule,
    natsServerChecksumsRule,
];

/**
 * With the stack name, the stack's environment (lib/environments.ts) adds
 * its own refusals, e.g. prod's; without it only the per-key and cross-key
 * rules apply.
 */
export function parseStackConfig(raw: RawConfig, stack?: string): Result<StackConfig> {
    const { values, errors: found } = parseKeys(raw);
    // A key whose own value was refused is not also named by a rule over two keys (say, "required" after "bad port").
    const refused = new Set(found.map((e) => e.key));
    for (const rule of CROSS_KEY_RULES) {
        const problem = rule(values);
        if (problem && !refused.has(problem.key)) found.push(problem);
    }
    found.push(...catalogRules(values));
    if (stack !== undefined) {
        const nameProblem = stackNameProblem(stack);
        if (nameProblem) found.push(nameProblem);
        for (const problem of environmentProblems(environmentOf(stack), values)) found.push({ ...problem, key: qualify(problem.key) });
    }
    // A key already reported (say, a secret in clear text) is not also "required".
    found.push(...proxmoxRules(values).filter((e) => !found.some((reported) => reported.key === e.key)));
    const warnings = [...catalogWarnings(values), ...operatorKeyWarnings(values)];
    // Last line of defence: whatever rule built a message, a private key in it is shown by fingerprint.
    const errors = found.map((e) => ({ ...e, message: redactPrivateKeys(e.message), ...(e.value !== undefined ? { value: redactPrivateKeys(e.value) } : {}) }));
    if (errors.length) return { ok: false, errors, warnings };
    const v = values as CheckedValues;
    return {
        ok: true,
        warnings,
        value: {
            region: v.region,
            access: accessConfig(v),
            objectStore: objectStoreConfig(v),
            bootstrap: bootstrapConfig(v),
            wgCache: wgCacheConfig(v),
            nats: natsConfig(v),
            lifecycle: lifecycleConfig(v),
            proxmox: proxmoxConfig(v),
        },
    };
}
