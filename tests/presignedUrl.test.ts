import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { startMockCloud } from "../tooling/mockCloud";
import { PresignedUrl } from "../providers/presignedUrl";
import { resolve } from "./support/outputs";

describe("PresignedUrl resource (mocks)", () => {
    let options: pulumi.CustomResourceOptions | undefined;
    let url: PresignedUrl;

    before(async () => {
        const cloud = await startMockCloud({ project: "meshstack", stack: "test" });
        await cloud.runProgram(() => {
            pulumi.runtime.registerStackTransformation((args) => {
                if (args.name === "probe") options = args.opts;
                return undefined;
            });
            url = new PresignedUrl("probe", {
                endpoint: "https://us-east-1.linodeobjects.com", region: "us-east-1", bucket: "b", key: "k", method: "GET",
                expiresInSeconds: 60, accessKeyId: "AKID", secretAccessKey: "SECRET",
            });
            return {};
        });
    });

    it("asks the engine to encrypt the url output in state", () => {
        assert.deepStrictEqual(options?.additionalSecretOutputs, ["url"]);
    });

    it("registers as a meshstack dynamic resource type", async () => {
        assert.match(await resolve(url.urn), /pulumi-nodejs:dynamic\/meshstack:PresignedUrl::probe$/);
    });

    it("resolves the url output", async () => {
        assert.match(await resolve(url.url), /^https:\/\/us-east-1\.linodeobjects\.com\/b\/k\?X-Amz-Algorithm=AWS4-HMAC-SHA256&.*&X-Amz-Signature=[0-9a-f]{64}$/);
    });
});
