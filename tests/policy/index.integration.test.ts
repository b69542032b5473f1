/**
 * The policy pack as the Pulumi CLI runs it: started by @pulumi/pulumi's own
 * run-policy-pack host (TypeScript compiled and type-checked the same way),
 * serving the analyzer gRPC protocol the engine speaks, and asked over that
 * protocol. It names its six mandatory policies, rejects a violating
 * resource with the policy's name, and accepts a compliant one. It also
 * shows the runtime's own handling of previews, which tests/policy/rules.test.ts
 * models: a rule that reads a value not known yet is skipped (advisory),
 * never handed a sentinel.
 */
import * as assert from "assert";
import { ChildProcess, spawn } from "child_process";
import * as path from "path";
import { UNKNOWN } from "../../providers/unknowns";

const POLICY_DIR = path.resolve(__dirname, "../../policy");
// The pack's own packages, as the CLI would load them.
const fromPack = (id: string) => require(require.resolve(id, { paths: [POLICY_DIR] }));
const grpc = fromPack("@grpc/grpc-js");
const analyzerGrpc = fromPack("@pulumi/pulumi/proto/analyzer_grpc_pb.js");
const analyzerPb = fromPack("@pulumi/pulumi/proto/analyzer_pb.js");
const { Struct } = fromPack("google-protobuf/google/protobuf/struct_pb.js");
const { Empty } = fromPack("google-protobuf/google/protobuf/empty_pb.js");

const ADVISORY = 0; // pulumirpc.EnforcementLevel.ADVISORY
const MANDATORY = 1; // pulumirpc.EnforcementLevel.MANDATORY

function startPack(): Promise<{ child: ChildProcess; port: number }> {
    const host = require.resolve("@pulumi/pulumi/cmd/run-policy-pack/index.js", { paths: [POLICY_DIR] });
    const child = spawn(process.execPath, [host, "127.0.0.1:0", "."], { cwd: POLICY_DIR, stdio: ["ignore", "pipe", "pipe"] });
    return new Promise((resolve, reject) => {
        let stderr = "";
        child.stderr!.on("data", (d) => (stderr += d));
        child.stdout!.once("data", (d) => resolve({ child, port: Number(String(d).trim()) }));
        child.once("exit", (code) => reject(new Error(`policy pack exited ${code}: ${stderr}`)));
    });
}

describe("policy pack under the CLI's policy-pack host (analyzer gRPC)", function () {
    this.timeout(180_000);
    let child: ChildProcess;
    let client: any;
    const call = <T>(method: string, request: unknown): Promise<T> =>
        new Promise((resolve, reject) => client[method](request, (err: Error | null, res: T) => (err ? reject(err) : resolve(res))));

    function analyze(type: string, name: string, props: Record<string, unknown>, stack = "dev", protect = false, secretOutputs = ["metadatas"]): Promise<{ policy: string; message: string; level: number }[]> {
        const request = new analyzerPb.AnalyzeRequest();
        request.setType(type);
        request.setName(name);
        request.setUrn(`urn:pulumi:${stack}::meshstack::${type}::${name}`);
        request.setProperties(Struct.fromJavaScript(props));
        const options = new analyzerPb.AnalyzerResourceOptions();
        options.setProtect(protect);
        options.setAdditionalsecretoutputsList(type === "linode:index/instance:Instance" ? secretOutputs : []);
        request.setOptions(options);
        return call<any>("analyze", request).then((res) =>
            res.getDiagnosticsList().map((d: any) => ({ policy: d.getPolicyname(), message: d.getMessage(), level: d.getEnforcementlevel() })));
    }

    /** analyzeStack, as the engine calls it at the end of a preview: each resource with what feeds each input, by URN. */
    function analyzeStack(resources: { type: string; name: string; props: Record<string, unknown>; feeds?: Record<string, string[]> }[]): Promise<{ policy: string; message: string; level: number; urn: string }[]> {
        const urn = (type: string, name: string) => `urn:pulumi:dev::meshstack::${type}::${name}`;
        const types = new Map(resources.map((r) => [r.name, r.type]));
        const request = new analyzerPb.AnalyzeStackRequest();
        for (const r of resources) {
            const resource = new analyzerPb.AnalyzerResource();
            resource.setType(r.type);
            resource.setName(r.name);
            resource.setUrn(urn(r.type, r.name));
            resource.setProperties(Struct.fromJavaScript(r.props));
            resource.setOptions(new analyzerPb.AnalyzerResourceOptions());
            for (const [key, names] of Object.entries(r.feeds ?? {})) {
                const deps = new analyzerPb.AnalyzerPropertyDependencies();
                deps.setUrnsList(names.map((n) => urn(types.get(n)!, n)));
                resource.getPropertydependenciesMap().set(key, deps);
            }
            request.addResources(resource);
        }
        return call<any>("analyzeStack", request).then((res) =>
            res.getDiagnosticsList().map((d: any) => ({ policy: d.getPolicyname(), message: d.getMessage(), level: d.getEnforcementlevel(), urn: d.getUrn() })));
    }

    before(async () => {
        const started = await startPack();
        child = started.child;
        client = new analyzerGrpc.AnalyzerClient(`127.0.0.1:${started.port}`, grpc.credentials.createInsecure());
    });
    after(() => {
        client?.close();
        child?.kill();
    });

    it("names its six mandatory policies", async () => {
        const info = await call<any>("getAnalyzerInfo", new Empty());
        assert.strictEqual(info.getName(), "meshstack");
        const policies = info.getPoliciesList().map((p: any) => [p.getName(), p.getEnforcementlevel()]);
        assert.deepStrictEqual(policies.map((p: [string, number]) => p[0]).sort(), [
            "meshstack-instance-firewall-from-firewall", "meshstack-instance-has-firewall", "meshstack-no-public-storage", "meshstack-no-world-inbound",
            "meshstack-prod-protects-state", "meshstack-user-data-secret",
        ]);
        assert.ok(policies.every((p: [string, number]) => p[1] === MANDATORY));
    });

    it("rejects a firewall open to the world on tcp/22, as mandatory", async () => {
        const diagnostics = await analyze("linode:index/firewall:Firewall", "fw", {
            inboundPolicy: "DROP",
            inbounds: [{ label: "ssh", action: "ACCEPT", protocol: "TCP", ports: "22", ipv4s: ["0.0.0.0/0"] }],
        });
        assert.strictEqual(diagnostics.length, 1);
        assert.strictEqual(diagnostics[0].policy, "meshstack-no-world-inbound");
        assert.strictEqual(diagnostics[0].level, MANDATORY);
    });

    it("rejects an unprotected bucket in prod and accepts it in dev", async () => {
        const bucket = { label: "meshstack-prod-rendezvous-abc123", acl: "private", region: "us-ord" };
        assert.deepStrictEqual((await analyze("linode:index/objectStorageBucket:ObjectStorageBucket", "rendezvous-bucket", bucket, "prod")).map((d) => d.policy), ["meshstack-prod-protects-state"]);
        assert.deepStrictEqual(await analyze("linode:index/objectStorageBucket:ObjectStorageBucket", "rendezvous-bucket", bucket, "dev"), []);
    });

    it("rejects an instance whose user-data is not a secret output", async () => {
        const diagnostics = await analyze("linode:index/instance:Instance", "n", { firewallId: 42, metadatas: [{ userData: "eA==" }] }, "dev", false, []);
        assert.deepStrictEqual(diagnostics.map((d) => [d.policy, d.level]), [["meshstack-user-data-secret", MANDATORY]]);
    });

    it("in a preview of a fresh stack (unknown firewall id and user-data) skips the firewall-id rule, advisory, and reports nothing mandatory", async () => {
        const diagnostics = await analyze("linode:index/instance:Instance", "nats-0-instance", { firewallId: UNKNOWN, metadatas: UNKNOWN, tags: ["nats"] });
        assert.deepStrictEqual(diagnostics.map((d) => [d.policy, d.level]), [["meshstack-instance-has-firewall", ADVISORY]]);
        assert.match(diagnostics[0].message, /^can't run policy 'meshstack-instance-has-firewall' from policy pack 'meshstack@v[^']+' during preview: string value at \.firewallId can't be known during preview$/);
        assert.ok(!diagnostics.some((d) => d.policy === "meshstack-user-data-secret"), "the user-data rule decides on options alone");
    });

    it("in a preview, refuses an instance registered without firewallId: its absence is known", async () => {
        const diagnostics = await analyze("linode:index/instance:Instance", "nats-0-instance", { metadatas: UNKNOWN, tags: ["nats"] });
        assert.deepStrictEqual(diagnostics.map((d) => [d.policy, d.level]), [["meshstack-instance-has-firewall", MANDATORY]]);
    });

    it("in a preview, decides the firewall from what feeds firewallId: a firewall passes, anything else is refused as mandatory", async () => {
        const firewall = { type: "linode:index/firewall:Firewall", name: "nats-firewall", props: { label: UNKNOWN, inboundPolicy: "DROP" } };
        const password = { type: "random:index/randomPassword:RandomPassword", name: "pw", props: { result: UNKNOWN } };
        const instance = (by: string) => ({ type: "linode:index/instance:Instance", name: "nats-0-instance", props: { firewallId: UNKNOWN, metadatas: UNKNOWN }, feeds: { firewallId: [by] } });
        assert.deepStrictEqual(await analyzeStack([firewall, password, instance("nats-firewall")]), []);
        const refused = await analyzeStack([firewall, password, instance("pw")]);
        assert.deepStrictEqual(refused.map((d) => [d.policy, d.level, d.urn]), [["meshstack-instance-firewall-from-firewall", MANDATORY, "urn:pulumi:dev::meshstack::linode:index/instance:Instance::nats-0-instance"]]);
        assert.match(refused[0].message, /takes its firewallId from pw \(random:index\/randomPassword:RandomPassword\)/);
    });

    it("accepts a compliant instance and a dynamic resource", async () => {
        assert.deepStrictEqual(await analyze("linode:index/instance:Instance", "nats-0-instance", { firewallId: 42, metadatas: [{ userData: "I2Nsb3VkLWNvbmZpZw==" }], tags: ["nats"] }), []);
        assert.deepStrictEqual(await analyze("pulumi-nodejs:dynamic:Resource", "nats-0-bootstrap-object", { content: "x", store: false }), []);
    });
});
