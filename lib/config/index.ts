/**
 * Typed stack configuration: the config API the program, the offline plan
 * and the tests import. Each section (catalog, access, objectStore,
 * bootstrap, wireguard, nats, proxmox) declares its keys beside its rules;
 * keys.ts joins them into the table Pulumi.yaml is generated from;
 * stackConfig.ts turns the raw strings Pulumi hands over into a StackConfig
 * or into the complete list of problems (report.ts), so an operator fixes a
 * stack file in one pass instead of one `pulumi up` per mistake.
 */
export { CONFIG_NAMESPACE, formatConfigErrors, formatConfigWarnings, qualify } from "./report";
export type { ConfigError, ConfigWarning, Result } from "./report";
export { pemBlock } from "./keySpec";
export type { ConfigSection, KeySpec } from "./keySpec";
export { CONFIG_KEYS, CONFIG_SECTIONS } from "./keys";
export { shownValue } from "./parseKeys";
export type { RawConfig } from "./parseKeys";
export { parseStackConfig } from "./stackConfig";
export type { StackConfig } from "./stackConfig";
export type { AccessConfig } from "./access";
export type { BootstrapConfig } from "./bootstrap";
export type { LifecycleConfig } from "./lifecycle";
export type { NatsConfig } from "./nats";
export type { ObjectStoreConfig } from "./objectStore";
export type { ProxmoxConfig } from "./proxmox";
export type { WgCacheConfig } from "./wireguard";
