/**
 * Every `meshstack:*` key: the one table of types, defaults, secrecy and
 * rules. Pulumi.yaml's config block is generated from it (`npm run
 * gen:config`), so a new key is one entry in its section's module.
 */
import { accessKeys } from "./access";
import { bootstrapKeys } from "./bootstrap";
import { catalogKeys } from "./catalog";
import { ConfigSection, KeySpec } from "./keySpec";
import { lifecycleKeys } from "./lifecycle";
import { natsKeys } from "./nats";
import { objectStoreKeys } from "./objectStore";
import { PROXMOX_KEYS_COMMENT, proxmoxKeys } from "./proxmox";
import { wireguardKeys } from "./wireguard";

/** In this order in Pulumi.yaml, and in this order a stack's problems are reported key by key. */
export const CONFIG_SECTIONS: readonly ConfigSection[] = [
    { keys: catalogKeys },
    { keys: accessKeys },
    { keys: objectStoreKeys },
    { keys: bootstrapKeys },
    { keys: wireguardKeys },
    { keys: natsKeys },
    { keys: lifecycleKeys },
    { keys: proxmoxKeys, comment: PROXMOX_KEYS_COMMENT },
];

export const CONFIG_KEYS: Record<string, KeySpec> = Object.assign({}, ...CONFIG_SECTIONS.map((section) => section.keys));
