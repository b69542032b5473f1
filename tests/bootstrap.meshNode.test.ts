import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import * as zlib from "zlib";
import { DeliveryChoice } from "../cloudinit/delivery";
import { MeshNode } from "../components/meshNode";
import { ObjectStore } from "../components/objectStore";
import { BootstrapConfig } from "../lib/config";
import { LINODE_METADATA_SAFE_LIMIT_BYTES } from "../lib/limits";
import { isRpcSecret, MockCloud, startMockCloud, unwrapSecrets } from "../tooling/mockCloud";
import { instanceUserData } from "../tooling/plan";
import { BootstrapObject } from "../providers/bootstrapObject";
import { cloudConfigOfBytes } from "./support/cloudInit";
import { isSecret, resolve } from "./support/outputs";

const IMAGE = "linode/debian12";
const BOOTSTRAP: BootstrapConfig = { metadataLimitBytes: LINODE_METADATA_SAFE_LIMIT_BYTES, gzipUserDataImages: [], urlExpirySeconds: 900, cleanupDelaySeconds: 120 };
const SMALL = "#cloud-config\nruncmd:\n  - [echo, hello]\n";
const COMPRESSIBLE = cloudConfigOfBytes(40_000, "compressible");
const INCOMPRESSIBLE = cloudConfigOfBytes(40_000, "incompressible");

interface Built {
    cloud: MockCloud;
    node: MeshNode;
    delivery: DeliveryChoice;
    /** What `pulumi up` printed through pulumi.log while the program ran. */
    logs: string[];
}

async function build(name: string, cloudConfig: string, bootstrap: BootstrapConfig = BOOTSTRAP): Promise<Built> {
    const cloud = await startMockCloud({ project: "meshstack", stack: "test" });
    const logs: string[] = [];
    const consoleLog = console.log;
    console.log = (...args: unknown[]) => logs.push(args.join(" "));
    let node: MeshNode | undefined;
    try {
        await cloud.runProgram(() => {
            const objectStore = new ObjectStore(`${name}-store`, {
                naming: { project: "meshstack", stack: "test" }, kind: "linode", region: "us-east",
                bootstrapPrefix: "bootstrap/", bootstrapObjectExpiryDays: 1,
            });
            node = new MeshNode(name, {
                naming: { project: "meshstack", stack: "test" }, region: "us-east", instanceType: "g6-nanode-1", image: IMAGE,
                cloudConfig: pulumi.output(cloudConfig), authorizedKeys: [], objectStore, bootstrap,
            });
            return {};
        });
    } finally {
        console.log = consoleLog;
    }
    return { cloud, node: node!, delivery: await resolve(node!.bootstrapDelivery), logs };
}

describe("MeshNode bootstrap delivery (mocks)", () => {
    describe("a cloud-config that fits", () => {
        let built: Built;
        before(async () => (built = await build("small", SMALL)));

        it("goes inline and the instance gets the cloud-config itself", () => {
            assert.strictEqual(built.delivery.method, "inline");
            assert.strictEqual(instanceUserData(built.cloud.byName("small-instance"))!.toString("utf8"), SMALL);
        });

        it("keeps the user-data secret in state", () => {
            assert.ok(isRpcSecret(built.cloud.byName("small-instance").inputs.metadatas));
        });

        it("stores nothing in the bucket", () => {
            const object = built.cloud.byName("small-bootstrap-object");
            assert.strictEqual(object.inputs.store, false);
            assert.ok(isRpcSecret(object.inputs.content), "the content input is secret even when not stored");
            assert.strictEqual(built.cloud.byName("small-bootstrap-cleanup").outputs.outcome, "nothing-stored");
        });
    });

    describe("an oversized cloud-config on an image listed in gzipUserDataImages", () => {
        let built: Built;
        before(async () => (built = await build("zipped", COMPRESSIBLE, { ...BOOTSTRAP, gzipUserDataImages: [IMAGE] })));

        it("goes gzipped and the instance's user-data gunzips to the cloud-config", () => {
            assert.strictEqual(built.delivery.method, "gzip");
            assert.strictEqual(zlib.gunzipSync(instanceUserData(built.cloud.byName("zipped-instance"))!).toString("utf8"), COMPRESSIBLE);
        });
    });

    describe("an oversized cloud-config that does not fit even gzipped", () => {
        let built: Built;
        before(async () => (built = await build("large", INCOMPRESSIBLE, { ...BOOTSTRAP, gzipUserDataImages: [IMAGE] })));

        it("uploads the original cloud-config, as a secret input, under the per-stack, per-node bootstrap prefix", () => {
            const object = built.cloud.byName("large-bootstrap-object");
            assert.strictEqual(object.inputs.store, true);
            assert.ok(isRpcSecret(object.inputs.content));
            assert.strictEqual(unwrapSecrets(object.inputs.content), INCOMPRESSIBLE);
            assert.match(object.inputs.key as string, /^bootstrap\/test\/large\/[a-z0-9]{6}-[0-9a-f]{16}\.cloud-config$/);
        });

        it("gives the instance an #include pointer to the presigned GET URL", async () => {
            const url = built.cloud.byName("large-bootstrap-url");
            assert.strictEqual(instanceUserData(built.cloud.byName("large-instance"))!.toString("utf8"), `#include\n${url.outputs.url}\n`);
            assert.strictEqual(built.delivery.method, "object");
        });

        it("signs a GET for the uploaded key with the configured expiry, re-signed only when content or instance generation change", () => {
            const url = built.cloud.byName("large-bootstrap-url");
            const object = built.cloud.byName("large-bootstrap-object");
            assert.deepStrictEqual([url.inputs.method, url.inputs.expiresInSeconds, url.inputs.key], ["GET", 900, object.outputs.key]);
            const keepers = url.inputs.keepers as Record<string, string>;
            assert.deepStrictEqual(Object.keys(keepers).sort(), ["contentSha256", "generation"]);
            assert.strictEqual(keepers.contentSha256, object.outputs.contentSha256);
        });

        it("creates the instance only after the upload, and cleans up only after the instance", () => {
            assert.ok(built.cloud.byName("large-instance").dependencies.has("large-bootstrap-object"));
            assert.ok(built.cloud.byName("large-bootstrap-url").dependencies.has("large-bootstrap-object"));
            const cleanup = built.cloud.byName("large-bootstrap-cleanup");
            assert.ok(cleanup.dependencies.has("large-instance"));
            assert.deepStrictEqual([cleanup.inputs.key, cleanup.inputs.stored, cleanup.inputs.delaySeconds], [built.cloud.byName("large-bootstrap-object").outputs.key, true, 120]);
        });

        it("keeps the pointer (a live URL) secret in state", () => {
            assert.ok(isRpcSecret(built.cloud.byName("large-instance").inputs.metadatas));
        });

        it("exposes the choice with its sizes as a non-secret output for the plan", async () => {
            assert.strictEqual(await isSecret(built.node.bootstrapDelivery), false);
            const { method, rawBytes, gzipBytes, limitBytes } = built.delivery;
            assert.deepStrictEqual([method, rawBytes, limitBytes], ["object", 40_000, LINODE_METADATA_SAFE_LIMIT_BYTES]);
            assert.ok(gzipBytes! > LINODE_METADATA_SAFE_LIMIT_BYTES);
        });

        it("logs the choice with sizes during `pulumi up`", () => {
            const line = built.logs.find((l) => l.includes("bootstrap delivery"));
            assert.match(line ?? "", new RegExp(`large: bootstrap delivery: object \\(raw 40000 bytes, gzip ${built.delivery.gzipBytes} bytes, limit 16384\\)`));
        });

        it("parents every bootstrap resource to the node", () => {
            for (const child of ["large-bootstrap-object", "large-bootstrap-url", "large-bootstrap-cleanup", "large-instance"]) {
                assert.strictEqual(built.cloud.byName(child).parent, "large", child);
            }
        });
    });

    it("falls back to the default cleanup delay when the bootstrap config has none", async () => {
        const { cleanupDelaySeconds: _omitted, ...withoutDelay } = BOOTSTRAP;
        const built = await build("defaulted", SMALL, withoutDelay);
        assert.strictEqual(built.cloud.byName("defaulted-bootstrap-cleanup").inputs.delaySeconds, 300);
    });
});

describe("BootstrapObject resource (mocks)", () => {
    it("asks the engine to encrypt the key pair it keeps in state for delete", async () => {
        const cloud = await startMockCloud({ project: "meshstack", stack: "test" });
        let options: pulumi.CustomResourceOptions | undefined;
        await cloud.runProgram(() => {
            pulumi.runtime.registerStackTransformation((args) => {
                if (args.name === "probe-bootstrap-object") options = args.opts;
                return undefined;
            });
            new BootstrapObject("probe-bootstrap-object", {
                endpoint: "https://us-east-1.linodeobjects.com", region: "us-east-1", bucket: "b", key: "bootstrap/test/probe/x.cloud-config",
                content: SMALL, store: true, accessKeyId: "AKID", secretAccessKey: "SECRET",
            });
            return {};
        });
        assert.deepStrictEqual(options?.additionalSecretOutputs, ["accessKeyId", "secretAccessKey"]);
    });
});
