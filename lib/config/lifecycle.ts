/** Day-2 decisions the stack takes on purpose: the rebuilds it accepts where the environment protects state. */
import { REBUILD_TOKEN } from "../rebuild";
import { CheckedValues, each, KeySpec, matches } from "./keySpec";

export interface LifecycleConfig {
    /** Tokens of the exact node rebuilds accepted (lib/rebuild.ts). */
    acceptRebuilds: string[];
}

export const lifecycleKeys = {
    acceptRebuilds: {
        type: "array", default: [], check: each(matches(REBUILD_TOKEN)),
        description: "Node rebuilds accepted where the environment protects state (prod), each as the token the refusal names. A token accepts one change to one node; any other change is still refused.",
        allowed: "a list of tokens <node>@<8 hex digits>, such as nats-0@1a2b3c4d, copied from a refusal",
    },
} satisfies Record<string, KeySpec>;

export function lifecycleConfig(v: CheckedValues): LifecycleConfig {
    return { acceptRebuilds: v.acceptRebuilds };
}
