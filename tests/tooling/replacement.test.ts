/**
 * tooling/replacement.ts: how the engine stand-ins (tests/support/engine.ts,
 * the box) treat `ignoreChanges`, as Pulumi does: the recorded value counts
 * for a resource in state, the program's for one being created.
 */
import * as assert from "assert";
import { differingKeys, replacingInputs, withIgnoredChanges } from "../../tooling/replacement";

const INSTANCE = "linode:index/instance:Instance";
const KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIampt1CPGT2o63CzgKlGlgfWB2qAls7mW0A69GBG5kl a@example";
const KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOPeratorKeyForTestsOnly0000000000000000 b@example";
const applied = { label: "nats-0-abc", image: "linode/debian12", authorizedKeys: [KEY_A], metadatas: [{ userData: "AAAA" }] };

describe("replacement: ignoreChanges as the engine applies it", () => {
    it("keeps an ignored property's recorded value, so changing it neither updates nor replaces the instance", () => {
        const news = withIgnoredChanges(applied, { ...applied, authorizedKeys: [KEY_A, KEY_B] }, ["authorizedKeys"]);
        assert.deepStrictEqual(news.authorizedKeys, [KEY_A]);
        assert.deepStrictEqual(differingKeys(applied, news), []);
    });

    it("without ignoreChanges the same change replaces the instance (Linode forces a new one for its keys)", () => {
        const why = differingKeys(applied, { ...applied, authorizedKeys: [KEY_B] });
        assert.deepStrictEqual(why, ["authorizedKeys"]);
        assert.ok(why.some(replacingInputs(INSTANCE)));
    });

    it("a replacement made for another reason is created with the recorded value, not the program's", () => {
        const news = withIgnoredChanges(applied, { ...applied, authorizedKeys: [KEY_B], image: "linode/debian13" }, ["authorizedKeys"]);
        assert.deepStrictEqual(differingKeys(applied, news), ["image"]);
        assert.deepStrictEqual(news.authorizedKeys, [KEY_A]);
    });

    it("takes the program's value for a property the last `up` did not set, and leaves the other properties alone", () => {
        const { authorizedKeys: _, ...withoutKeys } = applied;
        const news = withIgnoredChanges(withoutKeys, { ...applied, authorizedKeys: [KEY_B], label: "nats-0-def" }, ["authorizedKeys"]);
        assert.deepStrictEqual([news.authorizedKeys, news.label], [[KEY_B], "nats-0-def"]);
    });

    it("refuses a property path, which the stand-ins do not resolve, instead of ignoring nothing", () => {
        assert.throws(() => withIgnoredChanges(applied, applied, ["metadatas[0].userData"]), /ignoreChanges "metadatas\[0\]\.userData": a property path; the engine stand-ins take top-level property names only/);
    });
});
