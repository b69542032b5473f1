import * as assert from "assert";
import fc from "fast-check";
import { changedFields, containsUnknown, knownFailures, UNKNOWN } from "../../providers/unknowns";

const RUNS = { numRuns: 300 };
/** JSON-shaped inputs as the provider host gets them, with the sentinel somewhere or nowhere. */
const leaf = fc.oneof(fc.string({ maxLength: 6 }), fc.integer(), fc.boolean(), fc.constant(null), fc.constant(UNKNOWN), fc.constant(`${UNKNOWN}x`));
const json = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: "small" }, leaf, fc.array(tie("value"), { maxLength: 3 }), fc.dictionary(fc.constantFrom("a", "b", "c"), tie("value"), { maxKeys: 3 })),
})).value;

/** The leaves of a JSON value, by a route of its own. */
function leaves(value: unknown): unknown[] {
    if (value !== null && typeof value === "object") return Object.values(value as object).flatMap(leaves);
    return [value];
}

describe("unknown inputs (properties)", () => {
    it("finds the sentinel exactly when some leaf is the sentinel itself (a string holding it is known)", () => {
        fc.assert(fc.property(json, (value) => assert.strictEqual(containsUnknown(value), leaves(value).includes(UNKNOWN))), RUNS);
    });

    it("keeps exactly the failures whose property path reaches no unknown", () => {
        const inputs = fc.dictionary(fc.constantFrom("bucket", "key", "policy"), json, { maxKeys: 3 });
        const paths = fc.array(fc.constantFrom("bucket", "key", "policy", "policy.a", "policy.a.b", "missing"), { maxLength: 6 });
        fc.assert(fc.property(inputs, paths, (values, properties) => {
            const failures = properties.map((property, i) => ({ property, reason: `r${i}` }));
            const valueAt = (path: string) => {
                let v: unknown = values;
                for (const part of path.split(".")) {
                    if (v === UNKNOWN) return v;
                    v = v !== null && typeof v === "object" ? (v as Record<string, unknown>)[part] : undefined;
                }
                return v;
            };
            assert.deepStrictEqual(knownFailures(values, failures), failures.filter((f) => !containsUnknown(valueAt(f.property))));
        }), RUNS);
    });

    it("counts a field as changed when its value differs or is not known yet, and only then", () => {
        const fields = ["a", "b", "c"] as const;
        const record = fc.record({ a: json, b: json, c: json }, { requiredKeys: [] });
        fc.assert(fc.property(record, record, (olds, news) => {
            const expected = fields.filter((f) => containsUnknown(news[f]) || JSON.stringify(olds[f]) !== JSON.stringify(news[f]));
            assert.deepStrictEqual(changedFields(olds, news, fields), expected);
            assert.deepStrictEqual(changedFields(news, news, fields), fields.filter((f) => containsUnknown(news[f])));
        }), RUNS);
    });
});
