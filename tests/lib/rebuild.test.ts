/**
 * Rebuild decisions (lib/rebuild.ts) and the per-node guard that applies
 * them (providers/nodeRebuildGuard.ts), the guard driven in its serialized
 * form the way the engine calls it: check(olds, news) with the last up's inputs.
 */
import * as assert from "assert";
import fc from "fast-check";
import { NO_VALUE, RebuildInputs, rebuildChanges, rebuildDecision, RebuildPolicy, rebuildToken, REBUILD_TOKEN } from "../../lib/rebuild";
import { NodeRebuildGuard } from "../../providers/nodeRebuildGuard";
import { UNKNOWN } from "../../providers/unknowns";
import { captureDynamicResource, ProviderHost } from "../harness/dynamicProviders";

const SOURCES = { region: "meshstack:region", image: "meshstack:natsImage", authorizedKeys: "meshstack:sshAuthorizedKeys", userData: "its user-data" };
const OLD: RebuildInputs = { image: "linode/debian12", region: "us-east", authorizedKeys: "", userData: "a".repeat(64) };
const policy = (over: Partial<RebuildPolicy> = {}): RebuildPolicy => ({ node: "nats-0", sources: SOURCES, rolled: [], refuse: false, accepted: [], ...over });

describe("node rebuilds", () => {
    describe("rebuildChanges", () => {
        it("lists each changed input with its source and both values, in name order", () => {
            assert.deepStrictEqual(rebuildChanges(OLD, { ...OLD, region: "us-west", image: "linode/debian13" }, policy()), [
                { input: "image", source: "meshstack:natsImage", from: "linode/debian12", to: "linode/debian13" },
                { input: "region", source: "meshstack:region", from: "us-east", to: "us-west" },
            ]);
        });

        it("lists them in name order whatever order the inputs come in", () => {
            assert.deepStrictEqual(rebuildChanges({ region: "us-east", image: "a" }, { region: "us-west", image: "b" }, policy()).map((c) => c.input), ["image", "region"]);
        });

        it("leaves out a rolled input", () => {
            assert.deepStrictEqual(rebuildChanges(OLD, { ...OLD, image: "linode/debian13" }, policy({ rolled: ["image"] })), []);
        });

        it("counts an input added or dropped, since the label's keepers change with it", () => {
            const { authorizedKeys: _, ...withoutKeys } = OLD;
            assert.deepStrictEqual(rebuildChanges(withoutKeys, OLD, policy()).map((c) => [c.input, c.from, c.to]), [["authorizedKeys", NO_VALUE, ""]]);
            assert.deepStrictEqual(rebuildChanges(OLD, withoutKeys, policy()).map((c) => [c.input, c.from, c.to]), [["authorizedKeys", "", NO_VALUE]]);
        });
    });

    describe("rebuildToken", () => {
        it("has the shape meshstack:acceptRebuilds allows, for any node and change", () => {
            fc.assert(fc.property(fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}$/), fc.string(), fc.string(), (node, from, to) =>
                REBUILD_TOKEN.test(rebuildToken(node, [{ input: "region", source: "meshstack:region", from, to }]))));
        });

        it("differs for another node, another target value or another input: one token accepts one change to one node", () => {
            const change = [{ input: "region", source: "meshstack:region", from: "us-east", to: "us-west" }];
            const token = rebuildToken("nats-0", change);
            assert.notStrictEqual(rebuildToken("nats-1", change), token);
            assert.notStrictEqual(rebuildToken("nats-0", [{ ...change[0], to: "us-central" }]), token);
            assert.notStrictEqual(rebuildToken("nats-0", [{ ...change[0], input: "image" }]), token);
            assert.strictEqual(rebuildToken("nats-0", [{ ...change[0], source: "renamed key" }]), token, "the source is only for messages");
        });
    });

    describe("rebuildDecision", () => {
        it("nothing changed: nothing to say", () => {
            assert.deepStrictEqual(rebuildDecision(OLD, OLD, policy({ refuse: true })), { kind: "none" });
        });

        it("a node that holds no protected state: the rebuild is named, never refused", () => {
            const decision = rebuildDecision(OLD, { ...OLD, region: "us-west" }, policy());
            assert.strictEqual(decision.kind, "warn");
            assert.match((decision as { message: string }).message, /^cluster rebuild: nats-0 is rebuilt: .* because meshstack:region changed from us-east to us-west$/);
        });

        it("a protected node: refused, naming the change, the way back and the token that accepts it", () => {
            const news = { ...OLD, region: "us-west" };
            const decision = rebuildDecision(OLD, news, policy({ refuse: true }));
            assert.strictEqual(decision.kind, "refuse");
            const { message, token } = decision as { message: string; token: string };
            assert.strictEqual(token, rebuildToken("nats-0", rebuildChanges(OLD, news, policy())));
            assert.match(message, /^refused: nats-0 is rebuilt: .*meshstack:region changed from us-east to us-west\. This stack protects its state/);
            assert.ok(message.includes("set meshstack:region back to us-east"), message);
            assert.ok(message.includes(`add "${token}" to meshstack:acceptRebuilds`), message);
            assert.ok(message.includes("pulumi state unprotect, the URN ending in nats-0-instance"), message);
        });

        it("a protected node whose token is accepted: named as accepted, not refused", () => {
            const news = { ...OLD, region: "us-west" };
            const token = rebuildToken("nats-0", rebuildChanges(OLD, news, policy()));
            const decision = rebuildDecision(OLD, news, policy({ refuse: true, accepted: [token] }));
            assert.strictEqual(decision.kind, "warn");
            assert.match((decision as { message: string }).message, new RegExp(`^cluster rebuild, accepted by meshstack:acceptRebuilds \\(${token}\\)`));
        });

        it("two changes: each named, and each one's way back", () => {
            const { message } = rebuildDecision(OLD, { ...OLD, region: "us-west", image: "linode/debian13" }, policy({ refuse: true })) as { message: string };
            assert.ok(message.includes("meshstack:natsImage changed from linode/debian12 to linode/debian13; meshstack:region changed from us-east to us-west."), message);
            assert.ok(message.includes("set meshstack:natsImage back to linode/debian12 and meshstack:region back to us-east."), message);
        });

        it("an input dropped since the last up is shown as (none), not as the digest of a placeholder", () => {
            const { authorizedKeys: _, ...withoutKeys } = OLD;
            const { message } = rebuildDecision(OLD, withoutKeys, policy()) as { message: string };
            assert.match(message, /meshstack:sshAuthorizedKeys changed \(sha256 [0-9a-f]{12} -> \(none\)\)$/);
        });

        it("user-data and key lists are shown by digest, never as they are", () => {
            const news = { ...OLD, userData: "b".repeat(64), authorizedKeys: "ssh-ed25519 AAAAsecretish ops" };
            const { message } = rebuildDecision(OLD, news, policy({ refuse: true })) as { message: string };
            assert.ok(!message.includes("b".repeat(64)) && !message.includes("AAAAsecretish"), message);
            assert.match(message, /its user-data changed \(sha256 [0-9a-f]{12} -> [0-9a-f]{12}\)/);
            assert.match(message, /To keep the node, undo the change\./);
        });
    });

    describe("the guard, serialized, as the engine calls it", () => {
        let host: ProviderHost;
        const news = (inputs: RebuildInputs, over: Partial<RebuildPolicy> = {}) => ({ inputs, policy: policy(over) });

        before(async () => {
            const captured = await captureDynamicResource(() => new NodeRebuildGuard("nats-0-rebuild-guard", news(OLD)));
            host = await ProviderHost.start(captured.serializedProvider);
        });
        after(() => host.close());

        it("a new guard (no olds, as on a stack from before it) decides nothing", async () => {
            assert.deepStrictEqual((await host.check({}, news({ ...OLD, region: "us-west" }, { refuse: true }))).failures ?? [], []);
        });

        it("refuses a protected node's rebuild on the inputs property", async () => {
            const { failures } = await host.check(news(OLD), news({ ...OLD, region: "us-west" }, { refuse: true }));
            assert.deepStrictEqual(failures?.map((f: { property: string }) => f.property), ["inputs"]);
        });

        it("prints the warning line of a rebuild it lets through", async () => {
            // A host of its own: its output is complete only once it has closed.
            const captured = await captureDynamicResource(() => new NodeRebuildGuard("nats-0-rebuild-guard", news(OLD)));
            const own = await ProviderHost.start(captured.serializedProvider);
            assert.deepStrictEqual((await own.check(news(OLD), news({ ...OLD, region: "us-west" }))).failures ?? [], []);
            await own.close();
            assert.ok(own.logs.some((line) => line.startsWith("warning: cluster rebuild: nats-0 is rebuilt")), own.logs.join("\n"));
        });

        it("cannot decide on an unknown input at preview, and passes (the up decides)", async () => {
            assert.deepStrictEqual((await host.check(news(OLD), news({ ...OLD, userData: UNKNOWN }, { refuse: true }))).failures ?? [], []);
        });

        it("refuses a malformed token in the policy, naming it", async () => {
            const { failures } = await host.check(news(OLD), news(OLD, { accepted: ["nats-0"] }));
            assert.deepStrictEqual(failures?.map((f: { property: string; reason: string }) => [f.property, f.reason]), [["policy", 'accepted tokens ["nats-0"] are not <node>@<8 hex>']]);
        });

        it("diff names what changed and never replaces", async () => {
            const diff = await host.diff("id", news(OLD), news({ ...OLD, region: "us-west" }));
            assert.deepStrictEqual([diff.changes, diff.diffs, diff.replaces], [true, ["inputs"], []]);
            assert.deepStrictEqual((await host.diff("id", news(OLD), news(OLD))).changes, false);
        });
    });
});
