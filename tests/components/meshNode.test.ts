import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import * as zlib from "zlib";
import { DeliveryChoice } from "../../cloudinit/delivery";
import { AGENT_KEY_PLACEHOLDER, PUBLISH_URL_PLACEHOLDER } from "../../cloudinit/nodeBootstrap";
import { MeshNode } from "../../components/meshNode";
import { ObjectStore } from "../../components/objectStore";
import { BootstrapConfig } from "../../lib/config";
import { LINODE_METADATA_SAFE_LIMIT_BYTES } from "../../lib/limits";
import { isRpcSecret, MockCloud, startMockCloud, unwrapSecrets } from "../../tooling/mockCloud";
import { instanceUserData } from "../../tooling/plan";
import { BootstrapObject } from "../../providers/bootstrapObject";
import { sshEd25519PublicKey } from "../fixtures/sshPublicKey";
import { cloudConfigOfBytes } from "../support/cloudInit";
import { isSecret, resolve } from "../support/outputs";

const IMAGE = "linode/debian12";
const BOOTSTRAP: BootstrapConfig = { metadataLimitBytes: LINODE_METADATA_SAFE_LIMIT_BYTES, gzipUserDataImages: [], urlExpirySeconds: 900 };
const PUBLISH_TIMEOUT_SECONDS = 240;
/** Every node's cloud-config carries its publish URL and the agents' key once; these carry them in comment lines. */
const withPublishLine = (text: string) =>
    `${text}# publish to ${PUBLISH_URL_PLACEHOLDER}\n# agent key ${AGENT_KEY_PLACEHOLDER.accessKeyId}:${AGENT_KEY_PLACEHOLDER.secretAccessKey}\n`;
const SMALL = withPublishLine("#cloud-config\nruncmd:\n  - [echo, hello]\n");
const COMPRESSIBLE = withPublishLine(cloudConfigOfBytes(40_000, "compressible"));
const INCOMPRESSIBLE = withPublishLine(cloudConfigOfBytes(40_000, "incompressible"));

interface Built {
    cloud: MockCloud;
    node: MeshNode;
    delivery: DeliveryChoice;
    /** The cloud-config as the node gets it: the template with its publish URL signed in and the agents' key put in. */
    cloudConfig: string;
    /** What `pulumi up` printed through pulumi.log while the program ran. */
    logs: string[];
}

async function build(name: string, cloudConfig: string, bootstrap: BootstrapConfig = BOOTSTRAP, authorizedKeys: string[] = []): Promise<Built> {
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
                cloudConfig: pulumi.output(cloudConfig), authorizedKeys, objectStore, bootstrap, rebuild: { accepted: [], imageSource: "meshstack:wgCacheImage" },
                publish: { node: name, runtime: objectStore.runtime, expectedRequests: {}, bootstrapLogPath: "/var/log/boot.log", timeoutSeconds: PUBLISH_TIMEOUT_SECONDS },
            });
            return {};
        });
    } finally {
        console.log = consoleLog;
    }
    const publishUrl = cloud.byName(`${name}-publish-url`).outputs.url as string;
    const agentKey = unwrapSecrets(cloud.byName(`${name}-store-agent-key`).outputs);
    const filled = cloudConfig
        .replace(PUBLISH_URL_PLACEHOLDER, publishUrl)
        .replace(AGENT_KEY_PLACEHOLDER.accessKeyId, agentKey.accessKey as string)
        .replace(AGENT_KEY_PLACEHOLDER.secretAccessKey, agentKey.secretKey as string);
    return { cloud, node: node!, delivery: await resolve(node!.bootstrapDelivery), logs, cloudConfig: filled };
}

describe("MeshNode root's SSH keys (mocks)", () => {
    const KEYS = [sshEd25519PublicKey(1, "ops@example"), sshEd25519PublicKey(2)];
    let built: Built;
    before(async () => (built = await build("keyed", SMALL, BOOTSTRAP, KEYS)));

    it("gives Linode the keys at the instance's creation and ignores their later changes, which would replace it", () => {
        const instance = built.cloud.byName("keyed-instance");
        assert.deepStrictEqual(unwrapSecrets(instance.inputs).authorizedKeys, KEYS);
        assert.deepStrictEqual(instance.options?.ignoreChanges, ["authorizedKeys"]);
    });

    it("keeps the keys out of the label's keepers: a key change is no new generation", () => {
        const keepers = unwrapSecrets(built.cloud.byName("keyed-label").inputs).keepers as Record<string, string>;
        assert.deepStrictEqual(Object.keys(keepers).sort(), ["image", "region", "userData"]);
        assert.ok(!KEYS.some((key) => JSON.stringify(keepers).includes(key.split(" ")[1])), "a keeper carries a key");
    });
});

describe("MeshNode bootstrap delivery (mocks)", () => {
    describe("a cloud-config that fits", () => {
        let built: Built;
        before(async () => (built = await build("small", SMALL)));

        it("goes inline and the instance gets the cloud-config itself", () => {
            assert.strictEqual(built.delivery.method, "inline");
            assert.strictEqual(instanceUserData(built.cloud.byName("small-instance"))!.toString("utf8"), built.cloudConfig);
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
            assert.strictEqual(zlib.gunzipSync(instanceUserData(built.cloud.byName("zipped-instance"))!).toString("utf8"), built.cloudConfig);
        });
    });

    describe("an oversized cloud-config that does not fit even gzipped", () => {
        let built: Built;
        before(async () => (built = await build("large", INCOMPRESSIBLE, { ...BOOTSTRAP, gzipUserDataImages: [IMAGE] })));

        it("uploads the original cloud-config, as a secret input, under the per-stack, per-node bootstrap prefix", () => {
            const object = built.cloud.byName("large-bootstrap-object");
            assert.strictEqual(object.inputs.store, true);
            assert.ok(isRpcSecret(object.inputs.content));
            assert.strictEqual(unwrapSecrets(object.inputs.content), built.cloudConfig);
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

        it("creates the instance only after the upload, and cleans up only after the instance and its boot URL check", () => {
            assert.ok(built.cloud.byName("large-instance").dependencies.has("large-bootstrap-object"));
            assert.ok(built.cloud.byName("large-bootstrap-url").dependencies.has("large-bootstrap-object"));
            const cleanup = built.cloud.byName("large-bootstrap-cleanup");
            assert.ok(cleanup.dependencies.has("large-instance"));
            assert.ok(cleanup.dependencies.has("large-boot-urls"), "a failed URL check must not leave the cleanup waiting out its deadline");
            assert.deepStrictEqual([cleanup.inputs.key, cleanup.inputs.stored], [built.cloud.byName("large-bootstrap-object").outputs.key, true]);
        });

        it("ends the cleanup on the node's own publication, with the key poll's timeout as its deadline", () => {
            const cleanup = built.cloud.byName("large-bootstrap-cleanup");
            const poll = built.cloud.byName("large-published");
            assert.deepStrictEqual(
                [cleanup.inputs.publishedBucket, cleanup.inputs.publishedKey, cleanup.inputs.deadlineSeconds],
                [poll.inputs.bucket, poll.inputs.key, PUBLISH_TIMEOUT_SECONDS],
            );
            assert.notStrictEqual(cleanup.inputs.publishedBucket, cleanup.inputs.bucket, "the publication is in the runtime bucket, not beside the bootstrap object");
        });

        it("keeps the pointer (a live URL) secret in state", () => {
            assert.ok(isRpcSecret(built.cloud.byName("large-instance").inputs.metadatas));
        });

        it("exposes the choice with its sizes as a non-secret output for the plan", async () => {
            assert.strictEqual(await isSecret(built.node.bootstrapDelivery), false);
            const { method, rawBytes, gzipBytes, limitBytes } = built.delivery;
            assert.deepStrictEqual([method, rawBytes, limitBytes], ["object", Buffer.byteLength(built.cloudConfig), LINODE_METADATA_SAFE_LIMIT_BYTES]);
            assert.ok(gzipBytes! > LINODE_METADATA_SAFE_LIMIT_BYTES);
        });

        it("logs the choice with sizes during `pulumi up`", () => {
            const line = built.logs.find((l) => l.includes("bootstrap delivery"));
            assert.match(line ?? "", new RegExp(`large: bootstrap delivery: object \\(raw ${Buffer.byteLength(built.cloudConfig)} bytes, gzip ${built.delivery.gzipBytes} bytes, limit 16384\\)`));
        });

        it("parents every bootstrap resource to the node", () => {
            for (const child of ["large-bootstrap-object", "large-bootstrap-url", "large-bootstrap-cleanup", "large-instance"]) {
                assert.strictEqual(built.cloud.byName(child).parent, "large", child);
            }
        });
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
