import * as assert from "assert";
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import * as zlib from "zlib";
import { RecordedResource, RPC_SECRET_KEY, RPC_SECRET_SIG } from "../../tooling/mockCloud";
import { extractArtifacts, redactInputs, topologyMermaid } from "../../tooling/plan";
import { runStackProgram } from "../support/program";

const run = promisify(execFile);
const REPO_ROOT = path.resolve(__dirname, "../..");
const secret = (value: unknown) => ({ [RPC_SECRET_KEY]: RPC_SECRET_SIG, value });

function recorded(partial: Partial<RecordedResource> & Pick<RecordedResource, "type" | "name">): RecordedResource {
    return { parent: undefined, dependencies: new Set(), inputs: {}, outputs: {}, custom: true, ...partial };
}

async function plan(stack: string): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
        const { stdout, stderr } = await run("npm", ["run", "-s", "plan", "--", "--stack", stack], { cwd: REPO_ROOT });
        return { code: 0, stdout, stderr };
    } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
}

describe("offline plan", function () {
    this.timeout(60_000);

    describe("pieces", () => {
        it("redacts secrets and summarizes serialized providers", () => {
            const redacted = redactInputs({ url: secret("https://x?X-Amz-Signature=s"), nested: [{ key: secret("k") }], __provider: "exports.handler = ...", plain: 1 });
            assert.deepStrictEqual(redacted, { url: "[secret]", nested: [{ key: "[secret]" }], __provider: "[serialized dynamic provider, 21 bytes]", plain: 1 });
        });

        it("extracts an instance's user-data and every file its cloud-config writes", () => {
            const cloudConfig = "#cloud-config\nwrite_files:\n  - path: /etc/nats/nats.conf\n    content: |\n      port: 4222\n  - path: /usr/local/bin/boot.sh\n    encoding: b64\n    content: " + Buffer.from("echo hi\n").toString("base64") + "\n";
            const artifacts = extractArtifacts([recorded({
                type: "linode:index/instance:Instance", name: "nats-0-instance",
                inputs: { metadatas: secret([{ userData: Buffer.from(cloudConfig).toString("base64") }]) },
            })]);
            assert.deepStrictEqual(artifacts.map((a) => a.path), ["nats-0-instance/user-data.txt", "nats-0-instance/files/etc/nats/nats.conf", "nats-0-instance/files/usr/local/bin/boot.sh"]);
            assert.strictEqual(artifacts[1].content, "port: 4222\n");
            assert.strictEqual(artifacts[2].content, "echo hi\n");
        });

        it("decodes gzipped user-data", () => {
            const gz = zlib.gzipSync("#cloud-config\nruncmd: [true]\n").toString("base64");
            const [artifact] = extractArtifacts([recorded({ type: "linode:index/instance:Instance", name: "n", inputs: { metadatas: [{ userData: gz }] } })]);
            assert.deepStrictEqual(artifact, { path: "n/user-data.gunzipped.txt", content: "#cloud-config\nruncmd: [true]\n" });
        });

        it("extracts the cloud-config stored in the bucket only for nodes behind an #include pointer", () => {
            const object = (name: string, store: boolean) => recorded({
                type: "pulumi-nodejs:dynamic/meshstack:BootstrapObject", name,
                inputs: { store, content: secret("#cloud-config\nruncmd: [true]\n") },
            });
            const artifacts = extractArtifacts([object("big-bootstrap-object", true), object("small-bootstrap-object", false)]);
            assert.deepStrictEqual(artifacts.map((a) => a.path), ["big-bootstrap-object/stored/cloud-config.yaml"]);
        });

        it("draws components as subgraphs and their data dependencies as edges", () => {
            const diagram = topologyMermaid([
                recorded({ type: "meshstack:index:ObjectStore", name: "store", custom: false }),
                recorded({ type: "linode:index/objectStorageBucket:ObjectStorageBucket", name: "store-bucket", parent: "store" }),
                recorded({ type: "meshstack:index:WgCache", name: "wg", custom: false }),
                recorded({ type: "linode:index/instance:Instance", name: "wg-instance", parent: "wg", dependencies: new Set(["store-bucket"]) }),
            ]);
            assert.match(diagram, /^flowchart LR\n/);
            assert.match(diagram, /subgraph store\["meshstack:ObjectStore<br\/>store"\]\n    store_bucket\["linode:ObjectStorageBucket<br\/>store-bucket"\]\n  end/);
            assert.match(diagram, /  wg -->\|uses\| store\n/);
        });
    });

    describe("of the dev stack", () => {
        let result: { code: number; stdout: string; stderr: string };
        const outDir = path.join(REPO_ROOT, "out", "dev");
        before(async () => {
            result = await plan("dev");
        });

        it("succeeds and says what it wrote", () => {
            assert.strictEqual(result.code, 0, result.stderr);
            assert.match(result.stdout, /offline plan of stack dev: \d+ resources/);
        });

        it("lists every resource with type, name, parent and inputs", () => {
            const resources = JSON.parse(fs.readFileSync(path.join(outDir, "resources.json"), "utf8")) as { type: string; name: string; parent: string | null }[];
            const bucket = resources.find((r) => r.type === "linode:index/objectStorageBucket:ObjectStorageBucket");
            assert.strictEqual(bucket?.parent, "rendezvous");
        });

        /**
         * The secret values of this plan, taken from the rendered artifacts
         * (which hold them on purpose: they are what the nodes receive):
         * the NATS cluster password, the agents' read-only bucket key, the
         * presigned URL signatures, and each instance's user-data as Linode
         * Metadata gets it (base64). Any private key counts too, though the
         * nodes make theirs at first boot and none should be here.
         */
        function planSecrets(): { kind: string; where: string; value: string }[] {
            const secrets: { kind: string; where: string; value: string }[] = [];
            const walk = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true })
                .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
            for (const file of walk(path.join(outDir, "artifacts"))) {
                const text = fs.readFileSync(file, "utf8");
                const where = path.relative(outDir, file);
                for (const [, body] of text.matchAll(/-----BEGIN [A-Z ]*PRIVATE KEY-----\n([^-]+)-----END/g)) {
                    // Lines, as JSON escapes the newlines between them.
                    for (const line of body.split("\n").filter((l) => l.length >= 40)) secrets.push({ kind: "private key", where, value: line });
                }
                for (const [, password] of text.matchAll(/password: "([^"]+)"/g)) secrets.push({ kind: "cluster password", where, value: password });
                for (const [, signature] of text.matchAll(/X-Amz-Signature=([0-9a-f]{64})/g)) secrets.push({ kind: "presigned URL signature", where, value: signature });
                for (const [, secretKey] of text.matchAll(/^user = "[^:"]+:([^"]+)"$/gm)) secrets.push({ kind: "agents' bucket key", where, value: secretKey });
                if (/\/user-data\.txt$/.test(where)) secrets.push({ kind: "user-data", where, value: Buffer.from(text).toString("base64").slice(0, 80) });
            }
            return secrets;
        }

        it("finds the secrets to look for in the rendered artifacts, and no private key among them (keys are born on the nodes)", () => {
            const kinds = new Set(planSecrets().map((s) => s.kind));
            assert.deepStrictEqual([...kinds].sort(), ["agents' bucket key", "cluster password", "presigned URL signature", "user-data"]);
        });

        for (const file of ["resources.json", "outputs.json"]) {
            it(`writes no secret value into ${file}`, () => {
                const text = fs.readFileSync(path.join(outDir, file), "utf8");
                assert.ok(!text.includes(RPC_SECRET_SIG), "a secret wrapper leaked unredacted");
                const leaked = planSecrets().filter((s) => text.includes(s.value)).map((s) => `${s.kind} (${s.where})`);
                assert.deepStrictEqual(leaked, []);
            });
        }

        // `npm run plan` runs cached JavaScript, these tests run under ts-node:
        // a transpiler whose emit differs (swc's import interop did) changes
        // the providers Pulumi serializes, and the size of at least one.
        it("serializes every dynamic provider as the program does under ts-node", async () => {
            const providers = (resources: { name: string; inputs: { __provider?: string } }[]) => Object.fromEntries(resources
                .filter((r) => r.inputs.__provider !== undefined)
                .map((r) => [r.name, r.inputs.__provider]));
            const planned = providers(JSON.parse(fs.readFileSync(path.join(outDir, "resources.json"), "utf8")));
            assert.ok(Object.keys(planned).length > 0, "the plan serialized no dynamic provider");
            const underTsNode = (await runStackProgram("dev")).cloud.resources.map((r) => ({ name: r.name, inputs: redactInputs(r.inputs) as { __provider?: string } }));
            assert.deepStrictEqual(planned, providers(underTsNode));
        });

        it("writes a Mermaid topology", () => {
            assert.match(fs.readFileSync(path.join(outDir, "topology.mmd"), "utf8"), /^flowchart LR/);
        });
    });

    it("exits non-zero with the validation report for an invalid stack", async () => {
        const stack = `plan-test-invalid-${process.pid}`;
        const file = path.join(REPO_ROOT, `Pulumi.${stack}.yaml`);
        fs.writeFileSync(file, "config:\n  meshstack:natsNodeCount: 4\n  meshstack:region: <REGION>\n");
        try {
            const invalid = await plan(stack);
            assert.strictEqual(invalid.code, 1);
            assert.match(invalid.stderr, /2 problems/);
            assert.match(invalid.stderr, /meshstack:natsNodeCount = "4"/);
            assert.match(invalid.stderr, /meshstack:region = "<REGION>": is still a placeholder/);
            assert.ok(!fs.existsSync(path.join(REPO_ROOT, "out", stack)), "an invalid plan left output behind");
        } finally {
            fs.rmSync(file, { force: true });
        }
    });
});
