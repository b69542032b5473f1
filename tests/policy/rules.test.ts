/**
 * The policy pack's rules (policy/rules.ts, what `pulumi preview
 * --policy-pack policy` runs): each rejects a resource that breaks it, and
 * all of them accept every resource the program creates for every committed
 * stack under the mock cloud.
 */
import * as assert from "assert";
import { policyResources } from "../../tooling/plan";
import {
    asRuntimeSees, CheckedResource, checkStack, dynamicKind, instanceFirewallSourceViolations, instanceFirewallViolations, POLICY_NAMES, policyConfigForStack,
    PreviewUnknownError, prodProtectViolations, publicStorageViolations, runPolicies, stackViews, TYPES, userDataSecretViolations, worldInboundViolations,
} from "../../policy/rules";
import { UNKNOWN } from "../../providers/unknowns";
import { asHostSees, previewFreshStack } from "../support/engine";
import { committedStacks, forgetProgram, PROJECT, runStackProgram } from "../support/program";

function resource(type: string, props: Record<string, unknown>, options: Partial<CheckedResource["opts"]> = {}, stack = "dev", name = "r"): CheckedResource {
    return { type, name, urn: `urn:pulumi:${stack}::meshstack::${type}::${name}`, props, opts: { protect: false, additionalSecretOutputs: [], ...options } };
}

const world = { ipv4s: ["0.0.0.0/0"], ipv6s: ["::/0"] };
const firewall = (inbounds: Record<string, unknown>[], inboundPolicy = "DROP") => resource(TYPES.firewall, { inboundPolicy, inbounds });

describe("policy pack rules", () => {
    describe("no public bucket or object", () => {
        it("rejects a public-read Linode bucket", () => {
            assert.match(publicStorageViolations(resource(TYPES.linodeBucket, { acl: "public-read" }))[0], /public-read/);
        });
        it("rejects a public S3 object", () => {
            assert.strictEqual(publicStorageViolations(resource(TYPES.s3ObjectV2, { acl: "public-read" })).length, 1);
        });
        it("rejects a bucket policy granting Principal *", () => {
            const policy = JSON.stringify({ Statement: [{ Effect: "Allow", Principal: "*", Action: "s3:GetObject" }] });
            assert.strictEqual(publicStorageViolations(resource(TYPES.s3BucketPolicy, { policy })).length, 1);
        });
        it("rejects a public object made by a dynamic provider (generic dynamic type)", () => {
            assert.strictEqual(publicStorageViolations(resource("pulumi-nodejs:dynamic:Resource", { content: "x", store: true, acl: "public-read" })).length, 1);
        });
        it("accepts a private bucket", () => {
            assert.deepStrictEqual(publicStorageViolations(resource(TYPES.linodeBucket, { acl: "private" })), []);
        });
    });

    describe("every instance has a firewall", () => {
        it("rejects an instance without firewallId", () => {
            assert.match(instanceFirewallViolations(resource(TYPES.instance, { type: "g6-nanode-1" }))[0], /no firewall/);
        });
        it("rejects an instance without firewallId at preview too: the key's absence is known, nothing unknown is read", () => {
            const instance = resource(TYPES.instance, { type: "g6-nanode-1", metadatas: UNKNOWN });
            assert.match(instanceFirewallViolations({ ...instance, props: asRuntimeSees(instance.props) })[0], /no firewall at creation; set firewallId/);
        });
        it("rejects a firewallId that is no id, and accepts one that is", () => {
            assert.match(instanceFirewallViolations(resource(TYPES.instance, { firewallId: "" }))[0], /no firewall/);
            assert.deepStrictEqual(instanceFirewallViolations(resource(TYPES.instance, { firewallId: 42 })), []);
            assert.deepStrictEqual(instanceFirewallViolations(resource(TYPES.instance, { firewallId: "42" })), []);
        });
        it("is skipped, as the real runtime skips it, when the firewall id is not known yet (preview): no sentinel reaches the rule", () => {
            const instance = resource(TYPES.instance, { firewallId: UNKNOWN }, { additionalSecretOutputs: ["metadatas"] }, "dev", "nats-0-instance");
            assert.throws(() => instanceFirewallViolations({ ...instance, props: asRuntimeSees(instance.props) }), PreviewUnknownError);
            assert.deepStrictEqual(runPolicies([instance]), {
                violations: [],
                skipped: [{
                    policy: POLICY_NAMES.instanceFirewall, resource: "nats-0-instance",
                    message: "can't run policy 'meshstack-instance-has-firewall' during preview: string value at .firewallId can't be known during preview",
                }],
            });
        });
        it("decides at preview from what feeds firewallId: a Linode firewall's id passes, anything else fails", () => {
            const fw = resource(TYPES.firewall, { label: UNKNOWN, inboundPolicy: "DROP", inbounds: [] }, {}, "dev", "nats-firewall");
            const password = resource("random:index/randomPassword:RandomPassword", {}, {}, "dev", "pw");
            const fed = (by: string) => ({ ...resource(TYPES.instance, { firewallId: UNKNOWN }, {}, "dev", `i-${by}`), propertyDependencies: { firewallId: [by] } });
            assert.deepStrictEqual(instanceFirewallSourceViolations(stackViews([fw, password, fed("nats-firewall")])), []);
            assert.deepStrictEqual(instanceFirewallSourceViolations(stackViews([fw, password, fed("pw")])), [
                { resource: "i-pw", message: "instance i-pw takes its firewallId from pw (random:index/randomPassword:RandomPassword), not from a linode:index/firewall:Firewall" },
            ]);
            assert.deepStrictEqual(runPolicies([fw, password, fed("pw")]).violations.map((v) => v.policy), [POLICY_NAMES.instanceFirewallSource]);
        });
    });

    describe("no inbound rule open to the world but WireGuard", () => {
        it("rejects tcp/22 from the world", () => {
            const violations = worldInboundViolations(firewall([{ label: "ssh", action: "ACCEPT", protocol: "TCP", ports: "22", ...world }]));
            assert.match(violations[0], /"ssh" \(TCP 22\) is open to the whole internet/);
        });
        it("rejects an ACCEPT inbound policy", () => {
            assert.match(worldInboundViolations(firewall([], "ACCEPT"))[0], /inboundPolicy "ACCEPT"/);
        });
        it("rejects the NATS client port from the world unless the stack says so", () => {
            const fw = firewall([{ label: "nats-client", action: "ACCEPT", protocol: "TCP", ports: "4222", ipv4s: ["0.0.0.0/0"] }]);
            assert.strictEqual(worldInboundViolations(fw).length, 1);
            assert.deepStrictEqual(worldInboundViolations(fw, { wireguardPorts: [51820], natsClientPort: 4222, allowWorldNatsClient: true }), []);
        });
        it("takes the WireGuard port and the NATS client exception from the stack's own config", () => {
            const fw = firewall([
                { label: "wireguard", action: "ACCEPT", protocol: "UDP", ports: "51999", ...world },
                { label: "nats-client", action: "ACCEPT", protocol: "TCP", ports: "4222", ...world },
            ]);
            assert.strictEqual(worldInboundViolations(fw).length, 2);
            assert.deepStrictEqual(worldInboundViolations(fw, policyConfigForStack({ wireguardPort: 51999, natsClientCidrs: ["0.0.0.0/0"] })), []);
            assert.strictEqual(worldInboundViolations(fw, policyConfigForStack({ wireguardPort: 51999, natsClientCidrs: ["203.0.113.0/24"] })).length, 1);
        });

        it("accepts WireGuard from the world and SSH from one address", () => {
            const fw = firewall([
                { label: "wireguard", action: "ACCEPT", protocol: "UDP", ports: "51820", ...world },
                { label: "ssh", action: "ACCEPT", protocol: "TCP", ports: "22", ipv4s: ["203.0.113.7/32"] },
            ]);
            assert.deepStrictEqual(worldInboundViolations(fw), []);
        });
    });

    describe("user-data is secret", () => {
        it("rejects an instance whose user-data is not a secret output", () => {
            assert.match(userDataSecretViolations(resource(TYPES.instance, { metadatas: [{ userData: "I2Nsb3VkLWNvbmZpZw==" }] }))[0], /not secret/);
        });
        it("accepts it with additionalSecretOutputs metadatas", () => {
            const r = resource(TYPES.instance, { metadatas: [{ userData: "x" }] }, { additionalSecretOutputs: ["metadatas"] });
            assert.deepStrictEqual(userDataSecretViolations(r), []);
        });
    });

    describe("prod protects what holds state", () => {
        const natsNode = (stack: string, protect: boolean) => resource(TYPES.instance, { tags: ["meshstack", "nats"] }, { protect }, stack, "nats-0-instance");
        it("rejects an unprotected NATS node in prod", () => {
            assert.match(prodProtectViolations(natsNode("prod", false))[0], /must be protected/);
        });
        it("rejects an unprotected bucket and KV bucket (generic dynamic type) in prod", () => {
            assert.strictEqual(prodProtectViolations(resource(TYPES.linodeBucket, { acl: "private" }, {}, "prod")).length, 1);
            const kv = resource("pulumi-nodejs:dynamic:Resource", { servers: [], replicas: 3, bucket: "control" }, {}, "prod");
            assert.strictEqual(dynamicKind(kv), "JetStreamKv");
            assert.strictEqual(prodProtectViolations(kv).length, 1);
        });
        it("accepts a protected NATS node in prod and an unprotected one in dev", () => {
            assert.deepStrictEqual(prodProtectViolations(natsNode("prod", true)), []);
            assert.deepStrictEqual(prodProtectViolations(natsNode("dev", false)), []);
        });
    });

    it("accepts prod's resources as a preview of a fresh prod stack shows them; the firewall-id rule is skipped there, and its stack rule decides instead", async () => {
        const { cloud } = await previewFreshStack("prod").finally(forgetProgram);
        const checked = policyResources(PROJECT, "prod", cloud.resources).map((r) => ({ ...r, props: asHostSees(r.props) }));
        const instances = checked.filter((r) => r.type === TYPES.instance);
        assert.strictEqual(instances[0].props.firewallId, UNKNOWN, "a fresh stack's firewall id is not known yet");
        const report = runPolicies(checked);
        assert.deepStrictEqual(report.violations, []);
        assert.deepStrictEqual(report.skipped.map((s) => [s.policy, s.resource]), instances.map((i) => [POLICY_NAMES.instanceFirewall, i.name]));
        // What the stack rule relied on: each instance's firewallId is fed by a firewall, known while the id is not.
        for (const view of stackViews(checked).filter((v) => v.type === TYPES.instance)) {
            assert.ok(view.propertyDependencies.firewallId.some((f) => f.type === TYPES.firewall), view.name);
        }
    });

    for (const stack of committedStacks()) {
        it(`accepts every resource the program creates for stack ${stack}`, async function () {
            // The whole program under mocks: about 10 s alone, over a minute on a loaded 2-core host.
            this.timeout(180_000);
            const { cloud } = await runStackProgram(stack);
            const checked = policyResources(PROJECT, stack, cloud.resources);
            assert.ok(checked.some((r) => r.type === TYPES.instance) && checked.some((r) => r.type === TYPES.firewall));
            assert.deepStrictEqual(checkStack(checked), []);
        });
    }
});
