import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { startMockCloud, unwrapSecrets } from "../../tooling/mockCloud";
import { PresignedUrl, PresignedUrlArgs, PresignedUrlInputs } from "../../providers/presignedUrl";
import { captureDynamicResource, CapturedDynamicResource, OFFLINE_HOST_ENV, ProviderHost } from "../harness/dynamicProviders";
import { asHostSees } from "../support/engine";
import { resolve } from "../support/outputs";
import { pathStyleObjectPath, presignedQuery, splitPresignedUrl } from "../support/sigv4";

const PRESIGNED_URL_TYPE = "pulumi-nodejs:dynamic/meshstack:PresignedUrl";
const ARGS = {
    endpoint: "https://us-east-1.linodeobjects.com", region: "us-east-1", bucket: "b", key: "dir/with space+plus/k~é.txt", method: "GET",
    expiresInSeconds: 60, accessKeyId: "AKID", secretAccessKey: "SECRET",
} satisfies PresignedUrlArgs;

describe("PresignedUrl resource (mocks, created by its serialized provider)", () => {
    let options: pulumi.CustomResourceOptions | undefined;
    let url: PresignedUrl;
    let createdBetween: [number, number];

    before(async () => {
        // As `pulumi up` does: the resource's own serialized provider creates
        // it in a fresh host process, offline (signing needs no network).
        const cloud = await startMockCloud({
            project: "meshstack",
            stack: "test",
            async answer(registration, faked) {
                if (registration.type !== PRESIGNED_URL_TYPE) return faked;
                const host = await ProviderHost.start(unwrapSecrets(registration.inputs.__provider), OFFLINE_HOST_ENV);
                try {
                    const created = await host.checkAndCreate(asHostSees(registration.inputs));
                    return { id: created.id, state: { ...registration.inputs, ...created.outs } };
                } finally {
                    await host.close();
                }
            },
        });
        const started = Math.floor(Date.now() / 1000) * 1000;
        await cloud.runProgram(() => {
            pulumi.runtime.registerStackTransformation((args) => {
                if (args.name === "probe") options = args.opts;
                return undefined;
            });
            url = new PresignedUrl("probe", ARGS);
            return {};
        });
        createdBetween = [started, Date.now()];
    });

    it("asks the engine to encrypt the url output in state", () => {
        assert.deepStrictEqual(options?.additionalSecretOutputs, ["url"]);
    });

    it("registers as a meshstack dynamic resource type", async () => {
        assert.match(await resolve(url.urn), /pulumi-nodejs:dynamic\/meshstack:PresignedUrl::probe$/);
    });

    it("resolves the url output to the path-style object URL with the SigV4 query an independent signer computes", async () => {
        const [actual, signedAt] = await resolve(pulumi.all([url.url, url.signedAt]));
        const { base, query } = splitPresignedUrl(actual);
        assert.strictEqual(base, `${ARGS.endpoint}${pathStyleObjectPath(ARGS.bucket, ARGS.key)}`);
        assert.deepStrictEqual(query, presignedQuery({
            method: ARGS.method, host: "us-east-1.linodeobjects.com", canonicalPath: pathStyleObjectPath(ARGS.bucket, ARGS.key), region: ARGS.region,
            accessKeyId: ARGS.accessKeyId, secretAccessKey: ARGS.secretAccessKey, signedAt: new Date(signedAt), expiresInSeconds: ARGS.expiresInSeconds,
        }));
    });

    it("signs at creation time, in whole seconds, and expires expiresInSeconds later", async () => {
        const [signedAt, expiresAt] = await resolve(pulumi.all([url.signedAt, url.expiresAt]));
        const signed = Date.parse(signedAt);
        assert.ok(signed >= createdBetween[0] && signed <= createdBetween[1], `signedAt ${signedAt} is outside the run`);
        assert.strictEqual(signed % 1000, 0);
        assert.strictEqual(Date.parse(expiresAt) - signed, ARGS.expiresInSeconds * 1000);
    });
});

describe("PresignedUrl diff (serialized provider, offline host)", () => {
    let captured: CapturedDynamicResource;
    let host: ProviderHost;
    let created: { id: string; outs: Record<string, unknown> };

    before(async () => {
        captured = await captureDynamicResource(() => new PresignedUrl("probe", ARGS));
        host = await ProviderHost.start(captured.serializedProvider, OFFLINE_HOST_ENV);
        created = await host.checkAndCreate(captured.inputs);
    });
    after(async () => host?.close());

    const inputs = (overrides: Partial<PresignedUrlInputs> = {}) => ({ ...(captured.inputs as PresignedUrlInputs), ...overrides });

    it("reports no change for the inputs it was created with", async () => {
        const diff = await host.diff(created.id, created.outs, inputs());
        assert.deepStrictEqual([diff.changes, diff.diffs], [false, []]);
    });

    // Each of these is inside the signature (the host, the credential scope,
    // the path, the method, X-Amz-Expires): the old URL is wrong for the new
    // value, so the URL must be signed again.
    const signedChanges: Partial<PresignedUrlInputs> = {
        endpoint: "https://eu-central-1.linodeobjects.com",
        region: "eu-central-1",
        bucket: "other-bucket",
        key: "other/key",
        method: "PUT",
    };
    for (const [field, value] of Object.entries(signedChanges)) {
        it(`re-signs (an update, not a replacement) when ${field} changes`, async () => {
            const diff = await host.diff(created.id, created.outs, inputs({ [field]: value }));
            assert.deepStrictEqual([diff.changes, diff.diffs, diff.replaces], [true, [field], []]);
        });
    }

    // The URL sits in the user-data of the node that consumes it: a new
    // signature would replace that node, whose URL is already spent.
    const unsignedChanges: [string, Partial<PresignedUrlInputs>][] = [
        ["the lifetime", { expiresInSeconds: 3600 }],
        ["the key pair (a rotation)", { accessKeyId: "AKIAROTATED000000000", secretAccessKey: "rotated-secret-0000000000000000000000000" }],
    ];
    for (const [what, change] of unsignedChanges) {
        it(`keeps the URL (no change) when only ${what} changes`, async () => {
            const diff = await host.diff(created.id, created.outs, inputs(change));
            assert.deepStrictEqual([diff.changes, diff.diffs, diff.replaces], [false, [], []]);
        });
    }

    it("re-signs (an update) when a keeper changes: a new instance generation gets a fresh URL", async () => {
        const diff = await host.diff(created.id, created.outs, inputs({ keepers: { generation: "next" } }));
        assert.deepStrictEqual([diff.changes, diff.diffs, diff.replaces], [true, ["keepers"], []]);
    });
});
