/**
 * The boot URL check (providers/bootUrlsCheck.ts): an instance created with
 * expired presigned URLs in its user-data fails the `up` at once, naming the
 * label to replace instead. Driven in its serialized form.
 */
import * as assert from "assert";
import { BootUrlsCheck, bootUrlsProblem } from "../../providers/bootUrlsCheck";
import { captureDynamicResource, ProviderHost } from "../harness/dynamicProviders";

const inputs = (expiresAt: string, instanceId = "40000001") => ({ instanceId, expiresAt, nodeLabel: "meshstack-dev-nats-1-abc123", labelResource: "nats-1-label" });
const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString();
const anHourAgo = () => new Date(Date.now() - 3_600_000).toISOString();

describe("boot URL check", () => {
    describe("the rule", () => {
        const at = Date.parse("2026-12-02T12:00:00.000Z");

        it("passes URLs that have not expired", () => {
            assert.strictEqual(bootUrlsProblem(inputs("2026-12-02T12:00:01.000Z"), at), undefined);
        });

        it("refuses URLs expired at the instant of the check, naming the instance, the expiry and the label to replace", () => {
            const problem = bootUrlsProblem(inputs("2026-12-02T12:00:00.000Z"), at) ?? "";
            assert.match(problem, /^instance 40000001 \(meshstack-dev-nats-1-abc123\) was created with user-data whose presigned URLs expired at 2026-12-02T12:00:00.000Z/);
            assert.match(problem, /pulumi up --replace <urn of nats-1-label>/);
            assert.match(problem, /can neither fetch an #include cloud-config nor publish its public material/, "says what breaks");
            assert.match(problem, /an instance replaced on its own keeps its predecessor's/, "says why");
            assert.match(problem, /that up replaces this instance too\.$/, "says what happens to the broken instance");
        });

        it("refuses an expiry that is not a time", () => {
            assert.match(bootUrlsProblem(inputs("soon"), at) ?? "", /expiresAt "soon" is not a time/);
        });
    });

    describe("serialized", function () {
        this.timeout(30_000);
        let host: ProviderHost;

        before(async () => {
            const captured = await captureDynamicResource(() => new BootUrlsCheck("nats-1-boot-urls", inputs(inAnHour())));
            host = await ProviderHost.start(captured.serializedProvider);
        });

        after(async () => host?.close());

        it("records the instance it is made for, fresh or from before the check (a node that booted long ago needs its URLs no more)", async () => {
            for (const expiresAt of [inAnHour(), anHourAgo()]) {
                const { outs } = await host.create(inputs(expiresAt));
                assert.strictEqual(outs.instanceId, "40000001");
                assert.ok(Date.parse(outs.checkedAt) <= Date.now());
            }
        });

        it("passes a new instance whose URLs were signed for it", async () => {
            const created = await host.create(inputs(anHourAgo()));
            assert.strictEqual((await host.update(created.id, created.outs, inputs(inAnHour(), "40000002"))).outs.instanceId, "40000002");
        });

        it("passes the same instance, expired URLs and all, when only its label changes", async () => {
            const created = await host.create(inputs(anHourAgo()));
            assert.strictEqual((await host.update(created.id, created.outs, { ...inputs(anHourAgo()), nodeLabel: "renamed" })).outs.nodeLabel, "renamed");
        });

        it("checks again, in place, for a new instance, and fails the up when its URLs expired", async () => {
            const created = await host.create(inputs(inAnHour()));
            const replaced = inputs(anHourAgo(), "40000002");
            const diff = await host.diff(created.id, created.outs, replaced);
            assert.deepStrictEqual(diff, { changes: true, diffs: ["instanceId", "expiresAt"], replaces: [], deleteBeforeReplace: false });
            await assert.rejects(host.update(created.id, created.outs, replaced), /instance 40000002 .*presigned URLs expired at .*pulumi up --replace <urn of nats-1-label>/s);
        });

        it("leaves the same instance alone", async () => {
            const fresh = inputs(inAnHour());
            const created = await host.create(fresh);
            assert.strictEqual((await host.diff(created.id, created.outs, fresh)).changes, false);
        });
    });
});
