import * as assert from "assert";
import { dynamicStep, otherStep, replacedForReal, shortType } from "../../box/steps";

const INSTANCE = "linode:index/instance:Instance";
const instance = { type: INSTANCE, name: "nats-0", inputs: { label: "nats-0", image: "linode/debian12", metadatas: [{ userData: "AAAA" }] } };

describe("box steps: what a Day-2 `up` does to a resource that is not dynamic", () => {
    it("leaves a resource whose inputs are all the same", () => {
        assert.deepStrictEqual(otherStep(instance, { ...instance.inputs }, false), { step: "same", why: [] });
    });

    it("replaces an instance whose user-data changed, naming the input", () => {
        assert.deepStrictEqual(otherStep(instance, { ...instance.inputs, metadatas: [{ userData: "BBBB" }] }, false), { step: "replace", why: ["metadatas"] });
    });

    it("replaces on request (--replace) even with nothing changed, and says so first", () => {
        assert.deepStrictEqual(otherStep(instance, { ...instance.inputs }, true), { step: "replace", why: ["(replaced on request)"] });
        assert.deepStrictEqual(otherStep(instance, { ...instance.inputs, image: "linode/debian13" }, true), { step: "replace", why: ["(replaced on request)", "image"] });
    });

    it("replaces random and tls material on any input change", () => {
        const password = { type: "random:index/randomPassword:RandomPassword", name: "pw", inputs: { length: 32 } };
        assert.deepStrictEqual(otherStep(password, { length: 40 }, false), { step: "replace", why: ["length"] });
    });

    it("refuses an in-place update the box cannot carry out under running VMs", () => {
        assert.throws(() => otherStep(instance, { ...instance.inputs, label: "nats-0-renamed" }, false),
            { message: "nats-0: the box cannot update a linode:Instance under running VMs (label); bring the box down and up again" });
        const firewall = { type: "linode:index/firewall:Firewall", name: "fw", inputs: { inboundPolicy: "DROP" } };
        assert.throws(() => otherStep(firewall, { inboundPolicy: "ACCEPT" }, false), /fw: the box cannot update a linode:Firewall under running VMs \(inboundPolicy\)/);
    });

    it("refuses to replace a bucket, key or firewall, which the first `up` made for good", () => {
        const bucket = { type: "linode:index/objectStorageBucket:ObjectStorageBucket", name: "bucket", inputs: { label: "a" } };
        assert.throws(() => otherStep(bucket, { label: "b" }, false), /bucket: the box cannot replace a linode:ObjectStorageBucket under running VMs \(label\)/);
        const firewall = { type: "linode:index/firewall:Firewall", name: "fw", inputs: {} };
        assert.throws(() => otherStep(firewall, {}, true), /fw: the box cannot replace a linode:Firewall under running VMs \(\(replaced on request\)\)/);
    });

    it("replaces for real only instances and random and tls material", () => {
        assert.deepStrictEqual(
            [INSTANCE, "random:index/randomId:RandomId", "tls:index/privateKey:PrivateKey", "linode:index/firewall:Firewall", "linode:index/objectStorageKey:ObjectStorageKey", "pulumi-nodejs:dynamic/meshstack:WgPubkeyPoll"].map(replacedForReal),
            [true, true, true, false, false, false],
        );
    });
});

describe("box steps: what a Day-2 `up` does to a dynamic resource, by its provider's diff()", () => {
    it("leaves it when diff() reports no changes", () => {
        assert.deepStrictEqual(dynamicStep({ changes: false }, false), { step: "same", why: [] });
        assert.deepStrictEqual(dynamicStep({}, false), { step: "same", why: [] });
    });

    it("updates it in place when something changed and nothing forces a new one", () => {
        assert.deepStrictEqual(dynamicStep({ changes: true, diffs: ["timeoutSeconds"], replaces: [] }, false), { step: "update", why: ["timeoutSeconds"] });
    });

    it("replaces it when an input forces a new one, or on request", () => {
        assert.deepStrictEqual(dynamicStep({ changes: true, diffs: ["key"], replaces: ["key"] }, false), { step: "replace", why: ["key"] });
        assert.deepStrictEqual(dynamicStep({ changes: false }, true), { step: "replace", why: ["(replaced on request)"] });
    });
});

describe("box steps: resource types in the box's log lines", () => {
    it("names a type by its package and member, dynamic ones as dynamic", () => {
        assert.strictEqual(shortType(INSTANCE), "linode:Instance");
        assert.strictEqual(shortType("random:index/randomPassword:RandomPassword"), "random:RandomPassword");
        assert.strictEqual(shortType("pulumi-nodejs:dynamic/meshstack:WgPubkeyPoll"), "dynamic:WgPubkeyPoll");
    });
});
