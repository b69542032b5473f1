import * as assert from "assert";
import { pinnedToGenerationProvider } from "../../providers/pinnedToGeneration";
import { UNKNOWN } from "../../providers/unknowns";

const OLD = { generation: "a1b2c3", values: { accessKeyId: "KEY1", secretAccessKey: "SECRET1" } };

describe("PinnedToGeneration: values fixed for a boot generation's life", () => {
    it("keeps the values it was created with when only the values change (a rotated key rewrites no user-data)", async () => {
        const diff = await pinnedToGenerationProvider.diff!("id", OLD, { generation: "a1b2c3", values: { accessKeyId: "KEY2", secretAccessKey: "SECRET2" } });
        assert.deepStrictEqual(diff, { changes: false });
    });

    it("takes the current values for a new generation (a rebuilt node boots with the current key)", async () => {
        const diff = await pinnedToGenerationProvider.diff!("id", OLD, { generation: "d4e5f6", values: OLD.values });
        assert.deepStrictEqual(diff, { changes: true, replaces: ["generation"], deleteBeforeReplace: false });
        const created = await pinnedToGenerationProvider.create!({ generation: "d4e5f6", values: { accessKeyId: "KEY2", secretAccessKey: "SECRET2" } });
        assert.deepStrictEqual(created.outs, { generation: "d4e5f6", values: { accessKeyId: "KEY2", secretAccessKey: "SECRET2" } });
    });

    it("takes a generation unknown in a preview for a new one (its label is being replaced)", async () => {
        const diff = await pinnedToGenerationProvider.diff!("id", OLD, { generation: UNKNOWN, values: OLD.values });
        assert.deepStrictEqual(diff.replaces, ["generation"]);
    });

    it("refuses an empty generation and values that are not strings, naming each", async () => {
        const checked = await pinnedToGenerationProvider.check!({} as never, { generation: "", values: { accessKeyId: 7 } } as never);
        assert.deepStrictEqual(checked.failures!.map((f) => f.property), ["generation", "values"]);
    });
});
