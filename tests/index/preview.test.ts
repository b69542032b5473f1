import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { UNKNOWN } from "../../providers/unknowns";
import { ChangePreview, DYNAMIC_PREFIX, FreshPreview, namesWith, previewChange, previewFreshStack, runProgram, StackState, up } from "../support/engine";

const REPO_ROOT = path.resolve(__dirname, "../..");
const stackFiles = fs.readdirSync(REPO_ROOT).filter((f) => /^Pulumi\.[A-Za-z0-9_.-]+\.yaml$/.test(f));

function stackOf(file: string): string {
    return file.slice("Pulumi.".length, -".yaml".length);
}


/** Dynamic resources whose inputs come from config alone (the NATS image guard): known even on a fresh stack. */
const FROM_CONFIG_ALONE = ["nats-image-rollout"];

describe("pulumi preview under the engine's rules", function () {
    this.timeout(180_000);

    for (const file of stackFiles) {
        describe(`${file} on a fresh stack`, () => {
            let preview: FreshPreview;
            before(async () => {
                preview = await previewFreshStack(stackOf(file), file);
            });

            it("hands dynamic providers the unknown sentinel for what does not exist yet", () => {
                const withUnknown = preview.checked.filter((r) => JSON.stringify(r.inputs).includes(UNKNOWN));
                assert.ok(preview.checked.length > 0, "no dynamic resources were checked");
                const bucketFed = preview.checked.filter((r) => !FROM_CONFIG_ALONE.includes(r.name));
                assert.deepStrictEqual(withUnknown.map((r) => r.name), bucketFed.map((r) => r.name), "every bucket-fed dynamic resource has an unknown input on a fresh stack");
                // The image guard decides in the preview, so its inputs must be known there.
                assert.deepStrictEqual(preview.checked.filter((r) => FROM_CONFIG_ALONE.includes(r.name) && withUnknown.includes(r)), []);
            });

            it("passes every dynamic provider's check()", () => {
                assert.deepStrictEqual(preview.failures, []);
            });

            it("makes no network access from any provider", () => {
                assert.deepStrictEqual(preview.networkAttempts, []);
            });

            it("registers the same resources as the offline plan", async () => {
                const plan = await runProgram(stackOf(file), { preview: true, stackFile: file });
                const names = (run: { cloud: { resources: { type: string; name: string }[] } }) => run.cloud.resources.map((r) => `${r.type} ${r.name}`).sort();
                assert.deepStrictEqual(names(preview), names(plan));
            });
        });
    }

    describe("Pulumi.dev.yaml on a fresh stack with the rejoin wait on", () => {
        let preview: FreshPreview;
        before(async () => {
            preview = await previewFreshStack("dev", "Pulumi.dev.yaml", { "meshstack:natsClientCidrs": JSON.stringify(["203.0.113.7/32"]), "meshstack:natsRejoinTimeoutSeconds": "900" });
        });

        it("checks a wait and a stream guard per node with its instance, URL and bucket unknown, and the guard on images it knows", () => {
            const rejoins = preview.checked.filter((r) => r.name.endsWith("-rejoin"));
            assert.deepStrictEqual(rejoins.map((r) => r.name).sort(), ["nats-0-rejoin", "nats-1-rejoin", "nats-2-rejoin"]);
            for (const r of rejoins) assert.deepStrictEqual([r.inputs.instanceId, r.inputs.server, r.inputs.bucket], [UNKNOWN, UNKNOWN, UNKNOWN], r.name);
            const streamGuards = preview.checked.filter((r) => r.name.endsWith("-stream-guard"));
            assert.deepStrictEqual(streamGuards.map((r) => [r.name, r.inputs.name, r.inputs.node]).sort(), [0, 1, 2].map((i) => [`nats-${i}-stream-guard`, `nats-${i}`, `meshstack-dev-${i}`]));
            for (const r of streamGuards) assert.deepStrictEqual([r.inputs.instanceId, r.inputs.servers], [UNKNOWN, UNKNOWN], r.name);
            const guard = preview.checked.find((r) => r.name === "nats-image-rollout")!;
            assert.ok(!JSON.stringify(guard.inputs.images).includes(UNKNOWN), "the guard still decides in the preview");
        });

        it("passes every check() and touches no network", () => {
            assert.deepStrictEqual([preview.failures, preview.networkAttempts], [[], []]);
        });
    });

    describe("a change previewed against a completed up (dev)", () => {
        let state: StackState;
        let unchanged: ChangePreview;
        let changed: ChangePreview;
        before(async () => {
            ({ state } = await up("dev"));
            unchanged = await previewChange("dev", state, {});
            changed = await previewChange("dev", state, { "meshstack:bootstrapUrlExpirySeconds": "7200" });
        });

        it("changes nothing when nothing changed", () => {
            const notSame = [...unchanged.steps].filter(([, step]) => step !== "same");
            assert.deepStrictEqual(notSame, []);
            assert.deepStrictEqual(unchanged.failures, []);
        });

        // A re-signed URL is new user-data, and new user-data is a new instance:
        // a new lifetime applies to the URLs of the next generation only.
        it("keeps every presigned URL, and so every instance, when their lifetime changes", () => {
            const urls = [...state].filter(([, s]) => s.type === `${DYNAMIC_PREFIX}/meshstack:PresignedUrl`).map(([name]) => name);
            assert.ok(urls.filter((n) => n.endsWith("-bootstrap-url")).length >= 2 && urls.filter((n) => n.endsWith("-publish-url")).length >= 2);
            for (const url of urls) assert.strictEqual(changed.steps.get(url), "same", `${url}: ${changed.reasons.get(url)}`);
            const instances = [...state].filter(([, s]) => s.type === "linode:index/instance:Instance").map(([name]) => name);
            for (const instance of instances) assert.strictEqual(changed.steps.get(instance), "same", `${instance}: ${changed.reasons.get(instance)}`);
        });

        it("passes check() and diff() of every dynamic provider with unknowns where the engine has them", () => {
            assert.deepStrictEqual(changed.failures, []);
            assert.deepStrictEqual(changed.networkAttempts, []);
            const dynamic = [...changed.steps.keys()].filter((name) => state.get(name)?.type.startsWith(DYNAMIC_PREFIX));
            assert.strictEqual(dynamic.length, [...state.values()].filter((s) => s.type.startsWith(DYNAMIC_PREFIX)).length);
        });

        it("leaves the bucket and its key alone", () => {
            for (const name of ["rendezvous-bucket", "rendezvous-key"]) {
                assert.strictEqual(changed.steps.get(name), "same", `${name}: ${changed.reasons.get(name)}`);
            }
            assert.ok(namesWith(changed, "create").length === 0);
        });
    });
});
