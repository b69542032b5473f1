/**
 * Rebuilds decided before they happen. Linode cannot change an instance's
 * region, image or user-data in place: a change to any
 * of them is a new instance, with a new disk and a new WireGuard key. The
 * preview shows that only as a replacement count, and teams have learnt it
 * from the count. So every node's rebuild is named in the preview, and on a
 * node whose state the environment protects it is refused unless the stack
 * accepts that exact change. Pure: no Pulumi import.
 */
import { sha256Hex } from "./digest";

/**
 * The inputs that rebuild a node, by name: the same values its label's
 * keepers hold (components/meshNode.ts), so "changed here" is "replaced".
 */
export type RebuildInputs = Record<string, string>;

/** Where each rebuild input comes from, as an operator would look for it. */
export type RebuildSources = Record<string, string>;

export interface RebuildChange {
    input: string;
    source: string;
    from: string;
    to: string;
}

export interface RebuildPolicy {
    /** The node's name, as messages and accept tokens carry it. */
    node: string;
    /** What feeds each input, for messages. */
    sources: RebuildSources;
    /** Inputs another guard rolls one node per `up` (the NATS image): not this guard's business. */
    rolled: string[];
    /** The node holds state the environment protects: its rebuild is refused unless accepted. */
    refuse: boolean;
    /** meshstack:acceptRebuilds: tokens of the exact rebuilds the stack accepts. */
    accepted: string[];
}

/** `<node>@<8 hex>`: a node, and the digest of one exact change to it. */
export const REBUILD_TOKEN = /^[a-z0-9][a-z0-9-]{0,62}@[0-9a-f]{8}$/;

/**
 * Values shown as they are; the others (user-data, key lists) by digest,
 * since they are long or secret. An array, not a Set: Pulumi's closure
 * serialization does not carry a Set into the provider host.
 */
const SHOWN_AS_IS = ["region", "image"];

/** Shown for an input one side does not have. */
export const NO_VALUE = "(none)";

/**
 * The inputs whose value differs from the last `up`'s. An input added or
 * dropped counts too: the label's keepers change with it, and so the node.
 */
export function rebuildChanges(olds: RebuildInputs, news: RebuildInputs, policy: Pick<RebuildPolicy, "sources" | "rolled">): RebuildChange[] {
    const inputs = [...new Set([...Object.keys(olds), ...Object.keys(news)])];
    return inputs
        .filter((input) => !policy.rolled.includes(input) && olds[input] !== news[input])
        .sort()
        .map((input) => ({ input, source: policy.sources[input] ?? input, from: olds[input] ?? NO_VALUE, to: news[input] ?? NO_VALUE }));
}

/** The token that accepts exactly these changes to this node, and no other. */
export function rebuildToken(node: string, changes: RebuildChange[]): string {
    return `${node}@${sha256Hex(JSON.stringify(changes.map((c) => [c.input, c.from, c.to]))).slice(0, 8)}`;
}

function shown(change: RebuildChange): string {
    if (SHOWN_AS_IS.includes(change.input)) return `${change.source} changed from ${change.from} to ${change.to}`;
    const digest = (value: string) => (value === NO_VALUE ? value : sha256Hex(value).slice(0, 12));
    return `${change.source} changed (sha256 ${digest(change.from)} -> ${digest(change.to)})`;
}

export type RebuildDecision =
    | { kind: "none" }
    | { kind: "warn"; changes: RebuildChange[]; token: string; message: string }
    | { kind: "refuse"; changes: RebuildChange[]; token: string; message: string };

/**
 * What this `up` does to the node: nothing, a rebuild named in a warning, or
 * a refusal that says how to keep the node and how to rebuild it on purpose.
 */
export function rebuildDecision(olds: RebuildInputs, news: RebuildInputs, policy: RebuildPolicy): RebuildDecision {
    const changes = rebuildChanges(olds, news, policy);
    if (!changes.length) return { kind: "none" };
    const token = rebuildToken(policy.node, changes);
    const what = `${policy.node} is rebuilt: a new Linode instance, with a new disk and a new WireGuard key, because ${changes.map(shown).join("; ")}`;
    if (!policy.refuse) return { kind: "warn", changes, token, message: `cluster rebuild: ${what}` };
    if (policy.accepted.includes(token)) return { kind: "warn", changes, token, message: `cluster rebuild, accepted by meshstack:acceptRebuilds (${token}): ${what}` };
    const revert = changes.filter((c) => SHOWN_AS_IS.includes(c.input)).map((c) => `${c.source} back to ${c.from}`);
    return {
        kind: "refuse", changes, token,
        message: `refused: ${what}. This stack protects its state, and ${policy.node} holds state: nothing was replaced. `
            + `To keep the node, ${revert.length ? `set ${revert.join(" and ")}` : "undo the change"}. `
            + `To rebuild it on purpose: make sure every stream on it has replicas on other nodes, add "${token}" to meshstack:acceptRebuilds `
            + `(it accepts this change to ${policy.node} and nothing else), unprotect its instance (pulumi state unprotect, the URN ending in ${policy.node}-instance), and run pulumi up again`,
    };
}
