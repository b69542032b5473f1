import * as assert from "assert";
import * as linode from "@pulumi/linode";
import { apiInputProblems, FIREWALL_LABEL, providerInputProblems } from "../../lib/linodeLimits";
import { startMockCloud } from "../../tooling/mockCloud";
import { UNKNOWN } from "../../providers/unknowns";

const FIREWALL = "linode:index/firewall:Firewall";
const INSTANCE = "linode:index/instance:Instance";
const rule = (over: Record<string, unknown> = {}) => ({ label: "wireguard", action: "ACCEPT", protocol: "UDP", ports: "51820", ipv4s: ["0.0.0.0/0"], ...over });

describe("the pinned Linode provider's input validation (lib/linodeLimits.ts)", () => {
    it("refuses a 33-character firewall label with the provider's message", () => {
        const label = "meshstack-pr-12-wg-cache-firewall";
        assert.strictEqual(label.length, 33);
        assert.deepStrictEqual(providerInputProblems(FIREWALL, { label, inboundPolicy: "DROP", outboundPolicy: "ACCEPT" }), [{
            attribute: "label",
            message: "Invalid Attribute Value Length. Attribute label string length must be between 3 and 32, got: 33.",
        }]);
        assert.deepStrictEqual(providerInputProblems(FIREWALL, { label: "f".repeat(FIREWALL_LABEL.max), inboundPolicy: "DROP", outboundPolicy: "ACCEPT" }), []);
    });

    it("refuses a firewall rule's label, action, protocol, ports and addresses by their provider paths", () => {
        const problems = providerInputProblems(FIREWALL, {
            label: "fw-ok", inboundPolicy: "DROP", outboundPolicy: "ACCEPT",
            inbounds: [rule(), rule({ label: "r".repeat(33), action: "ALLOW", protocol: "SCTP", ports: "", ipv4s: ["10.0.0.0/33"], ipv6s: [] })],
        });
        assert.deepStrictEqual(problems.map((p) => p.attribute), ["inbound[1].label", "inbound[1].action", "inbound[1].protocol", "inbound[1].ports", "inbound[1].ipv4[0]", "inbound[1].ipv6"]);
        assert.match(problems[0].message, /Attribute inbound\[1\]\.label string length must be between 3 and 32, got: 33\./);
        assert.match(problems[1].message, /value must be one of: \["ACCEPT" "DROP"\], got: "ALLOW"/);
        assert.match(problems[4].message, /Given Value: 10\.0\.0\.0\/33/);
    });

    it("refuses an instance label over 50 characters in the SDKv2 validator's words", () => {
        const label = "i".repeat(51);
        assert.deepStrictEqual(providerInputProblems(INSTANCE, { label }), [{ attribute: "label", message: `expected length of label to be in the range (3 - 50), got ${label}` }]);
    });

    it("skips what is not known yet, as the provider does", () => {
        assert.deepStrictEqual(providerInputProblems(FIREWALL, { label: UNKNOWN, inboundPolicy: "DROP", outboundPolicy: "ACCEPT" }, (v) => v === UNKNOWN), []);
    });

    it("names what only the Linode API refuses, at create: bucket names and key labels", () => {
        assert.match(apiInputProblems("linode:index/objectStorageBucket:ObjectStorageBucket", { label: "Meshstack-Bucket" })[0].message, /lowercase/);
        assert.match(apiInputProblems("linode:index/objectStorageKey:ObjectStorageKey", { label: "k".repeat(51) })[0].message, /51 characters; allowed: 3-50/);
        assert.match(apiInputProblems(INSTANCE, { label: "two--dashes" })[0].message, /in a row/);
    });

    it("the mock cloud refuses the registration as the engine does, at preview", async () => {
        const cloud = await startMockCloud({ project: "meshstack", stack: "staging", preview: true });
        await assert.rejects(
            cloud.runProgram(() => {
                const fw = new linode.Firewall("wg-cache-firewall", { label: "meshstack-staging-wg-cache-firewall", inboundPolicy: "DROP", outboundPolicy: "ACCEPT" });
                return { id: fw.id };
            }),
            /linode:index\/firewall:Firewall resource 'wg-cache-firewall' has a problem: Invalid Attribute Value Length\. Attribute label string length must be between 3 and 32, got: 35\./,
        );
    });
});
