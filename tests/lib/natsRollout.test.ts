/**
 * The NATS image rollout rule (lib/natsRollout.ts) and its guard
 * (providers/natsImageRollout.ts), the guard driven in its serialized form
 * the way the engine calls it: check(olds, news) with the last up's inputs.
 */
import * as assert from "assert";
import fc from "fast-check";
import {
    MAX_NATS_IMAGE_CHANGES_PER_UP, natsImageChanges, natsImageRolloutProblem, natsNodeImage, parseNatsNodeImages, rejoinPendingProblem, StreamPlacement, streamsBehind, streamsHeldBy,
} from "../../lib/natsRollout";
import { NatsImageRollout } from "../../providers/natsImageRollout";
import { natsRejoinProvider } from "../../providers/natsRejoin";
import { UNKNOWN } from "../../providers/unknowns";
import { captureDynamicResource, ProviderHost } from "../harness/dynamicProviders";

const isImage = (value: string) => /^(linode|private)\/[A-Za-z0-9._-]+$/.test(value);
const OLD = "linode/debian12";
const NEW = "linode/debian13";
const three = (image: (i: number) => string) => Object.fromEntries([0, 1, 2].map((i) => [`nats-${i}`, image(i)]));

describe("NATS image rollout", () => {
    describe("meshstack:natsNodeImages", () => {
        it("reads entries as image by node index", () => {
            assert.deepStrictEqual(parseNatsNodeImages(["nats-0=linode/debian13", "nats-2=private/12345"], 3, isImage), { ok: true, value: { 0: NEW, 2: "private/12345" } });
        });

        it("reports every bad entry at once: format, image, an index past natsNodeCount, a node twice", () => {
            const parsed = parseNatsNodeImages(["nats-0=linode/debian13", "nats0=linode/debian13", "nats-1=debian13", "nats-3=linode/debian13", "nats-0=linode/debian12", "nats-01=linode/debian13"], 3, isImage);
            assert.strictEqual(parsed.ok, false);
            const error = (parsed as { error: string }).error;
            for (const part of [
                '"nats0=linode/debian13" is not "nats-<index>=<image>"',
                '"nats-1=debian13" is not',
                '"nats-3=linode/debian13" names nats-3, but natsNodeCount 3 has nats-0 to nats-2 only',
                '"nats-0=linode/debian12" sets nats-0 a second time',
                '"nats-01=linode/debian13" is not',
            ]) assert.ok(error.includes(part), `${part} in: ${error}`);
            assert.strictEqual(error.split("; ").length, 5, `one problem per bad entry, apart: ${error}`);
        });

        it("a node's own entry wins over natsImage; the others take natsImage", () => {
            assert.strictEqual(natsNodeImage(1, OLD, { 1: NEW }), NEW);
            assert.strictEqual(natsNodeImage(0, OLD, { 1: NEW }), OLD);
        });
    });

    describe("the rule", () => {
        it("lets one existing node change image per up", () => {
            assert.strictEqual(natsImageRolloutProblem(three(() => OLD), three((i) => (i === 1 ? NEW : OLD))), undefined);
        });

        it("refuses two, naming each change and the config that changes one node", () => {
            const problem = natsImageRolloutProblem(three(() => OLD), three((i) => (i === 2 ? OLD : NEW)));
            assert.match(problem ?? "", /change the image of 2 NATS nodes at once \(nats-0: linode\/debian12 -> linode\/debian13, nats-1: linode\/debian12 -> linode\/debian13\)/);
            assert.match(problem ?? "", /keep meshstack:natsImage at linode\/debian12 and set meshstack:natsNodeImages to \["nats-0=linode\/debian13"\]/);
            assert.match(problem ?? "", /a new instance with an empty disk/, "says why");
            assert.match(problem ?? "", /wait until JetStream is current on every node \(`curl -fsS http:\/\/127\.0\.0\.1:8222\/healthz` answers ok on each/, "says what to wait for between steps");
        });

        it("with nodes on different images, tells which to pin where they are", () => {
            const problem = natsImageRolloutProblem({ "nats-0": NEW, "nats-1": OLD, "nats-2": "private/7" }, three(() => "private/8"));
            assert.match(problem ?? "", /give nats-1, nats-2 their current images \(nats-1=linode\/debian12, nats-2=private\/7\) in meshstack:natsNodeImages and change nats-0 alone/);
        });

        it("orders nodes by index, so nats-10 comes after nats-9", () => {
            const names = ["nats-10", "nats-9"];
            const problem = natsImageRolloutProblem(Object.fromEntries(names.map((n) => [n, OLD])), Object.fromEntries(names.map((n) => [n, NEW])));
            assert.match(problem ?? "", /\(nats-9: .*, nats-10: /);
        });

        it("counts only replacements: nodes added or removed with new images do not count (property)", () => {
            fc.assert(
                fc.property(
                    fc.array(fc.record({ before: fc.option(fc.constantFrom(OLD, NEW), { nil: undefined }), after: fc.option(fc.constantFrom(OLD, NEW), { nil: undefined }) }), { maxLength: 9 }),
                    (nodes) => {
                        const olds: Record<string, string> = {};
                        const news: Record<string, string> = {};
                        nodes.forEach((n, i) => {
                            if (n.before) olds[`nats-${i}`] = n.before;
                            if (n.after) news[`nats-${i}`] = n.after;
                        });
                        const replaced = nodes.filter((n) => n.before && n.after && n.before !== n.after).length;
                        assert.strictEqual(natsImageRolloutProblem(olds, news) !== undefined, replaced > MAX_NATS_IMAGE_CHANGES_PER_UP);
                    },
                ),
            );
        });
    });

    describe("the guard, serialized, as the engine calls it", function () {
        this.timeout(30_000);
        let host: ProviderHost;

        before(async () => {
            const captured = await captureDynamicResource(() => new NatsImageRollout("nats-image-rollout", { images: three(() => OLD) }));
            host = await ProviderHost.start(captured.serializedProvider);
        });

        after(async () => host?.close());

        it("passes a new stack (no olds)", async () => {
            assert.deepStrictEqual((await host.check({}, { images: three(() => NEW) })).failures ?? [], []);
        });

        it("fails check() when the last up's images and this one's differ on two nodes", async () => {
            const { failures } = await host.check({ images: three(() => OLD) }, { images: three((i) => (i === 0 ? OLD : NEW)) });
            assert.deepStrictEqual(failures?.map((f) => f.property), ["images"]);
            assert.match(failures![0].reason, /2 NATS nodes at once/);
        });

        it("passes one node's change, and a preview whose images are not known yet", async () => {
            assert.deepStrictEqual((await host.check({ images: three(() => OLD) }, { images: three((i) => (i === 0 ? NEW : OLD)) })).failures ?? [], []);
            assert.deepStrictEqual((await host.check({ images: three(() => OLD) }, { images: UNKNOWN })).failures ?? [], []);
        });

        it("refuses images that are not node names to image ids", async () => {
            const { failures } = await host.check({}, { images: ["linode/debian12"] });
            assert.deepStrictEqual(failures?.map((f) => f.property), ["images"]);
        });

        it("changes in place (an update, never a replacement), and not at all when nothing changed", async () => {
            const created = await host.create({ images: three(() => OLD) });
            assert.deepStrictEqual(await host.diff(created.id, created.outs, { images: three(() => OLD) }), { changes: false, diffs: [], replaces: [], deleteBeforeReplace: false });
            const moved = three((i) => (i === 0 ? NEW : OLD));
            assert.deepStrictEqual(await host.diff(created.id, created.outs, { images: moved }), { changes: true, diffs: ["images"], replaces: [], deleteBeforeReplace: false });
            assert.deepStrictEqual((await host.update(created.id, created.outs, { images: moved })).outs, { images: moved });
        });
    });

    describe("the rejoin gate: no image moves while another replaced node is unconfirmed", () => {
        const pending = (i: number) => ({ name: `nats-${i}`, node: `meshstack-dev-${i}`, instanceId: `10${i}`, since: "2026-12-02T14:00:00.000Z" });

        it("lets an up through that moves nothing, or whose only unconfirmed node is the one it moves", () => {
            assert.strictEqual(rejoinPendingProblem([], [pending(1)]), undefined);
            assert.strictEqual(rejoinPendingProblem(["nats-1"], [pending(1)]), undefined);
            assert.strictEqual(rejoinPendingProblem(["nats-2"], []), undefined);
        });

        it("refuses, naming every unconfirmed node in index order, its instance, and the waits to pass", () => {
            assert.strictEqual(rejoinPendingProblem(["nats-0"], [pending(10), pending(2)]),
                "this up would replace nats-0 for its new image, but nats-2 (meshstack-dev-2, replaced by instance 102 at 2026-12-02T14:00:00.000Z), " +
                "nats-10 (meshstack-dev-10, replaced by instance 1010 at 2026-12-02T14:00:00.000Z) have not been seen current since: their rejoin waits failed or never ended. " +
                "Run pulumi up with the images as they were until nats-2-rejoin, nats-10-rejoin pass, then move the next node");
        });

        it("names one unconfirmed node in the singular", () => {
            assert.strictEqual(rejoinPendingProblem(["nats-0"], [pending(1)]),
                "this up would replace nats-0 for its new image, but nats-1 (meshstack-dev-1, replaced by instance 101 at 2026-12-02T14:00:00.000Z) " +
                "has not been seen current since: its rejoin wait failed or never ended. Run pulumi up with the images as they were until nats-1-rejoin passes, then move the next node");
        });

        it("names every node the up would move", () => {
            assert.match(rejoinPendingProblem(["nats-0", "nats-2"], [pending(1)])!, /^this up would replace nats-0, nats-2 for its new image, but nats-1 /);
        });

        it("counts as moving only existing nodes whose image changes, in index order", () => {
            assert.deepStrictEqual(natsImageChanges({ "nats-0": OLD, "nats-10": OLD, "nats-9": OLD, "nats-1": OLD }, { "nats-0": OLD, "nats-10": NEW, "nats-9": NEW, "nats-2": NEW }), ["nats-9", "nats-10"]);
        });
    });

    describe("the rejoin rule: is a node caught up?", () => {
        const NODE = "meshstack-dev-1";
        const follower = (name: string, current: boolean, extra: { offline?: boolean; lag?: number } = {}) => ({ name, current, ...extra });
        const placement = (stream: string, leader: string | undefined, ...replicas: StreamPlacement["replicas"]): StreamPlacement => ({ stream, leader, replicas });

        it("holds the streams it leads or follows, and only those", () => {
            const seen = [
                placement("KV_b", NODE, follower("meshstack-dev-0", true)),
                placement("KV_a", "meshstack-dev-0", follower(NODE, false)),
                placement("KV_c", "meshstack-dev-0", follower("meshstack-dev-2", true)),
            ];
            assert.deepStrictEqual(streamsHeldBy(NODE, seen), ["KV_a", "KV_b"]);
        });

        it("is caught up when it leads, when its replicas are current, or when it holds nothing", () => {
            assert.deepStrictEqual(streamsBehind(NODE, []), []);
            assert.deepStrictEqual(streamsBehind(NODE, [placement("KV_a", NODE, follower("meshstack-dev-0", false, { offline: true }))]), []);
            assert.deepStrictEqual(streamsBehind(NODE, [placement("KV_a", "meshstack-dev-0", follower(NODE, true, { lag: 0 }))]), []);
            assert.deepStrictEqual(streamsBehind(NODE, [placement("KV_a", "meshstack-dev-0", follower("meshstack-dev-2", false))]), []);
        });

        it("names each stream behind and why, in stream order: no stream info, no leader, offline, not current (with its lag when known)", () => {
            const seen = [
                placement("KV_d", "meshstack-dev-0", follower(NODE, false)),
                placement("KV_c", "meshstack-dev-0", follower(NODE, false, { lag: 42 })),
                placement("KV_b", "meshstack-dev-0", follower(NODE, true, { offline: true })),
                placement("KV_a", undefined, follower(NODE, true)),
            ];
            seen.push({ stream: "KV_0", replicas: [], unavailable: "stream is offline" });
            assert.deepStrictEqual(streamsBehind(NODE, seen), [
                "KV_0: no stream info (stream is offline)",
                "KV_a: no leader",
                `KV_b: the replica on ${NODE} is offline`,
                `KV_c: the replica on ${NODE} is not current (42 behind)`,
                `KV_d: the replica on ${NODE} is not current`,
            ]);
        });

        it("property: behind is a subset of held, and a node whose every replica is current and online is never behind", () => {
            const names = fc.constantFrom(NODE, "meshstack-dev-0", "meshstack-dev-2");
            const arbPlacement = fc.record({
                stream: fc.stringMatching(/^KV_[a-z]{1,4}$/),
                leader: fc.option(names, { nil: undefined }),
                replicas: fc.array(fc.record({ name: names, current: fc.boolean(), offline: fc.boolean() }), { maxLength: 3 }),
            });
            fc.assert(fc.property(fc.array(arbPlacement, { maxLength: 6 }), (seen) => {
                const held = new Set(streamsHeldBy(NODE, seen));
                for (const reason of streamsBehind(NODE, seen)) assert.ok(held.has(reason.split(":")[0]), reason);
                const unread = seen.map((p) => ({ ...p, unavailable: "stream is offline" }));
                assert.strictEqual(streamsBehind(NODE, unread).length, seen.length, "a placement that could not be read is never taken as current");
                const healthy = seen.map((p) => ({ ...p, leader: p.leader ?? "meshstack-dev-0", replicas: p.replicas.map((r) => ({ ...r, current: true, offline: false })) }));
                assert.deepStrictEqual(streamsBehind(NODE, healthy), []);
            }));
        });
    });

    describe("the rejoin wait's check and diff, as the engine calls them", () => {
        const inputs = {
            node: "meshstack-dev-1", instanceId: "4242", server: "tls://203.0.113.7:4222", tlsServerName: "nats.meshstack-dev.internal",
            caPem: "ca", certPem: "cert", keyPem: "key", timeoutSeconds: 900,
            endpoint: "https://us-east-1.linodeobjects.com", region: "us-east-1", bucket: "meshstack-dev-runtime", key: "rejoin/dev/meshstack-dev-1.json",
            accessKeyId: "deploy-key-id", secretAccessKey: "deploy-key-secret",
        };

        it("check reports every problem at once, naming the property, the value and what is allowed", async () => {
            const checked = await natsRejoinProvider.check!({} as never, { ...inputs, node: "", server: "nats://x", timeoutSeconds: 0, keyPem: "" } as never);
            assert.deepStrictEqual(checked.failures, [
                { property: "node", reason: 'got ""; allowed: the node\'s server name (a hostname)' },
                { property: "server", reason: 'got "nats://x"; allowed: one tls://host:port URL, the node\'s own' },
                { property: "timeoutSeconds", reason: "got 0; allowed: an integer from 1 to 7200" },
                { property: "keyPem", reason: "is required" },
            ]);
        });

        it("check takes each input at its bounds and refuses what is just past them", async () => {
            const failing = async (change: Record<string, unknown>) => ((await natsRejoinProvider.check!({} as never, { ...inputs, ...change } as never)).failures ?? []).map((f) => f.property);
            for (const ok of [{ timeoutSeconds: 1 }, { timeoutSeconds: 7200 }, { node: "n" }, { server: "tls://[2001:db8::1]:4222" }]) assert.deepStrictEqual(await failing(ok), [], JSON.stringify(ok));
            const bad: [Record<string, unknown>, string][] = [
                [{ timeoutSeconds: 7201 }, "timeoutSeconds"], [{ timeoutSeconds: 1.5 }, "timeoutSeconds"], [{ timeoutSeconds: "900" }, "timeoutSeconds"],
                [{ node: "-x" }, "node"], [{ node: "x y" }, "node"], [{ node: 7 }, "node"],
                [{ instanceId: "" }, "instanceId"], [{ instanceId: 4242 }, "instanceId"],
                [{ server: "xtls://h:4222" }, "server"], [{ server: "tls://h:4222/x" }, "server"], [{ server: "tls://h:" }, "server"], [{ server: "tls://:4222" }, "server"],
                [{ server: "tls://h:42a" }, "server"], [{ server: "tls://h h:4222" }, "server"], [{ server: "tls://h:4222x" }, "server"],
                [{ tlsServerName: undefined }, "tlsServerName"], [{ certPem: 1 }, "certPem"],
            ];
            for (const [change, property] of bad) assert.deepStrictEqual(await failing(change), [property], JSON.stringify(change));
            const reasons = (await natsRejoinProvider.check!({} as never, { ...inputs, instanceId: "" } as never)).failures;
            assert.deepStrictEqual(reasons, [{ property: "instanceId", reason: 'got ""; allowed: the id of the node\'s instance' }]);
        });

        it("in a preview of a fresh stack the instance and its URL are unknown: check passes, diff counts them as changes", async () => {
            const preview = { ...inputs, instanceId: UNKNOWN, server: UNKNOWN };
            assert.deepStrictEqual((await natsRejoinProvider.check!({} as never, preview as never)).failures, []);
            const diff = (await natsRejoinProvider.diff!("id", { ...inputs, streams: [] } as never, preview as never)) as { changes?: boolean; diffs?: string[]; replaces?: string[] };
            assert.deepStrictEqual([diff.changes, diff.diffs, diff.replaces], [true, ["instanceId", "server"], []]);
        });
    });
});
