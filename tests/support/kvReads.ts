import * as assert from "assert";
import { isDeepStrictEqual } from "util";
import { KV } from "@nats-io/kv";
import { waitFor } from "./ports";

/**
 * Asserts that every key reads back its value within the wait. KV reads are
 * direct gets that every replica answers, the first answer winning, so a read
 * right after an acknowledged write can come from a follower that has not
 * applied it yet: what must hold is that the value is there soon, not on the
 * first read.
 */
export async function assertReadsBack(store: KV, expected: Map<string, string>, what: string, timeoutMs = 120_000, intervalMs = 2000): Promise<void> {
    const want = Object.fromEntries(expected);
    let got: Record<string, string> = {};
    let lastError = "";
    await waitFor(what, async () => {
        const values: Record<string, string> = {};
        for (const key of expected.keys()) values[key] = (await store.get(key))?.string() ?? "<missing>";
        got = values;
        return isDeepStrictEqual(got, want);
    }, timeoutMs, intervalMs).catch((err: unknown) => {
        lastError = err instanceof Error ? err.message : String(err);
    });
    assert.deepStrictEqual(got, want, lastError || what);
}

/**
 * Puts `value` under `key`, retrying until a write is acknowledged (a leader
 * elected after a loss) or the wait ends, and records it in `written` when
 * it is given: the acknowledged writes later reads must find.
 */
export async function putWhenAcknowledged(store: KV, key: string, value: string, what: string, timeoutMs: number, intervalMs: number, written?: Map<string, string>): Promise<void> {
    await waitFor(what, async () => {
        await store.put(key, value);
        return true;
    }, timeoutMs, intervalMs);
    written?.set(key, value);
}
