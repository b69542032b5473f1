import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { CONFIG_KEYS, ConfigError, formatConfigErrors, parseStackConfig, pemBlock, qualify, StackConfig } from "../lib/config";
import { rawConfigFromStackFile } from "../lib/plan";
import { NATS_SERVER_RELEASE } from "../lib/natsRelease";

const REPO_ROOT = path.resolve(__dirname, "..");

function parse(values: Record<string, string>, secretKeys: string[] = []) {
    const qualified = Object.fromEntries(Object.entries(values).map(([k, v]) => [k.includes(":") ? k : qualify(k), v]));
    return parseStackConfig({ values: qualified, secretKeys: new Set(secretKeys.map(qualify)) });
}

function valid(values: Record<string, string> = {}, secretKeys: string[] = []): StackConfig {
    const result = parse(values, secretKeys);
    if (!result.ok) assert.fail(formatConfigErrors(result.errors));
    return result.value;
}

function errorsOf(values: Record<string, string>, secretKeys: string[] = []): ConfigError[] {
    const result = parse(values, secretKeys);
    assert.ok(!result.ok, "expected the config to be rejected");
    return result.errors;
}

function onlyError(values: Record<string, string>, secretKeys: string[] = []): ConfigError {
    const errors = errorsOf(values, secretKeys);
    assert.strictEqual(errors.length, 1, formatConfigErrors(errors));
    return errors[0];
}

describe("stack config", () => {
    it("fills every default when nothing is set", () => {
        const config = valid();
        assert.strictEqual(config.region, "us-east");
        assert.strictEqual(config.objectStore.kind, "linode");
        assert.strictEqual(config.bootstrap.metadataLimitBytes, 16384);
        assert.strictEqual(config.nats.nodeCount, 3);
        assert.strictEqual(config.wgCache.listenPort, 51820);
        assert.deepStrictEqual(config.access.breakGlassSshCidrs, []);
    });

    it("parses integers, lists and strings into their types", () => {
        const config = valid({ natsNodeCount: "5", breakGlassSshCidrs: '["203.0.113.7/32","2001:db8::/48"]', region: "de-fra-2" });
        assert.strictEqual(config.nats.nodeCount, 5);
        assert.deepStrictEqual(config.access.breakGlassSshCidrs, ["203.0.113.7/32", "2001:db8::/48"]);
        assert.strictEqual(config.region, "de-fra-2");
    });

    it("reports every problem at once, each naming key, value and what is allowed", () => {
        const errors = errorsOf({ natsNodeCount: "4", wgListenPort: "70000", region: "Mars", objectStoreKind: "gcs" });
        assert.deepStrictEqual(errors.map((e) => e.key).sort(), ["meshstack:natsNodeCount", "meshstack:objectStoreKind", "meshstack:region", "meshstack:wgListenPort"]);
        const nodeCount = errors.find((e) => e.key === "meshstack:natsNodeCount")!;
        assert.strictEqual(nodeCount.value, "4");
        assert.match(nodeCount.message, /allowed: an odd integer from 1 to 7/);
        const report = formatConfigErrors(errors);
        assert.match(report, /4 problems/);
        assert.match(report, /meshstack:wgListenPort = "70000": .*allowed: an integer from 1024 to 65535/);
    });

    it("takes a private mirror for nats-server, defaulting to the release site and its pinned checksums", () => {
        assert.deepStrictEqual(valid().nats.serverRelease, NATS_SERVER_RELEASE);
        const mirrored = valid({ natsServerDownloadUrl: "https://mirror.example.net/nats-server-{version}-linux-{arch}.tar.gz", natsServerSha256Amd64: "0".repeat(64) });
        assert.strictEqual(mirrored.nats.serverRelease.urlTemplate, "https://mirror.example.net/nats-server-{version}-linux-{arch}.tar.gz");
        assert.strictEqual(mirrored.nats.serverRelease.sha256.amd64, "0".repeat(64));
        assert.strictEqual(mirrored.nats.serverRelease.sha256.arm64, NATS_SERVER_RELEASE.sha256.arm64);
        const errors = errorsOf({ natsServerDownloadUrl: "https://mirror.example.net/nats.tar.gz", natsServerSha256Arm64: "XYZ" });
        assert.deepStrictEqual(errors.map((e) => e.key).sort(), ["meshstack:natsServerDownloadUrl", "meshstack:natsServerSha256Arm64"]);
        assert.match(errors.find((e) => e.key === "meshstack:natsServerDownloadUrl")!.message, /allowed: an http\(s\) URL containing \{arch\}/);
    });

    it("refuses angle-bracket placeholders", () => {
        const error = onlyError({ region: "<REGION>" });
        assert.strictEqual(error.key, "meshstack:region");
        assert.match(error.message, /placeholder/);
    });

    it("refuses CHANGEME placeholders", () => {
        assert.match(onlyError({ natsClusterName: "CHANGEME" }).message, /placeholder/);
    });

    it("refuses placeholders inside lists", () => {
        const error = onlyError({ breakGlassSshCidrs: '["<OPERATOR_IP>/32"]' });
        assert.match(error.message, /placeholder/);
    });

    it("refuses an empty string where a value is required", () => {
        const error = onlyError({ wgCacheImage: "" });
        assert.match(error.message, /is empty/);
    });

    it("refuses a non-integer where an integer is required", () => {
        assert.match(onlyError({ wgListenPort: "51820.5" }).message, /not an integer/);
    });

    it("refuses a list that is not a list of strings", () => {
        assert.match(onlyError({ natsClientCidrs: "10.0.0.0/8" }).message, /list/);
    });

    it("refuses malformed CIDRs and names the bad item", () => {
        const error = onlyError({ natsClientCidrs: '["10.0.0.0/8","10.0.0.300/32"]' });
        assert.match(error.message, /item 1 \("10\.0\.0\.300\/32"\) is not a CIDR/);
    });

    it("refuses an even NATS node count (RAFT needs a majority)", () => {
        assert.strictEqual(onlyError({ natsNodeCount: "2" }).key, "meshstack:natsNodeCount");
    });

    it("refuses KV replicas above the node count", () => {
        const error = onlyError({ natsNodeCount: "3", natsKvReplicas: "5" });
        assert.strictEqual(error.key, "meshstack:natsKvReplicas");
        assert.match(error.message, /exceeds natsNodeCount \(3\)/);
    });

    it("refuses a presigned URL expiry beyond SigV4's seven days", () => {
        assert.match(onlyError({ bootstrapUrlExpirySeconds: "604801" }).message, /604800/);
    });

    it("refuses a metadata limit above Linode's documented hard ceiling", () => {
        assert.match(onlyError({ metadataLimitBytes: "65536" }).message, /65535/);
    });

    it("requires an endpoint for an s3 object store", () => {
        const error = onlyError({ objectStoreKind: "s3" });
        assert.strictEqual(error.key, "meshstack:objectStoreEndpoint");
        assert.match(error.message, /required when objectStoreKind is s3/);
    });

    it("accepts an s3 object store with an endpoint", () => {
        const config = valid({ objectStoreKind: "s3", objectStoreEndpoint: "https://minio.example.com:9000", objectStoreRegion: "us-east-1" });
        assert.strictEqual(config.objectStore.endpoint, "https://minio.example.com:9000");
    });

    it("refuses an endpoint for a linode object store", () => {
        assert.match(onlyError({ objectStoreEndpoint: "https://x.example.com" }).message, /must not be set when objectStoreKind is linode/);
    });

    it("requires a supplied client CA key to be a secret, without echoing it", () => {
        const errors = errorsOf({
            natsClientCaCertPem: "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----",
            natsClientCaKeyPem: pemBlock("PRIVATE KEY", "secret-material"),
        });
        const keyError = errors.find((e) => e.key === "meshstack:natsClientCaKeyPem")!;
        assert.match(keyError.message, /--secret/);
        assert.strictEqual(keyError.value, "[secret]");
        assert.ok(!formatConfigErrors(errors).includes("secret-material"));
    });

    it("requires the client CA certificate and key together", () => {
        const error = onlyError({ natsClientCaKeyPem: pemBlock("PRIVATE KEY", "k") }, ["natsClientCaKeyPem"]);
        assert.strictEqual(error.key, "meshstack:natsClientCaCertPem");
    });

    it("accepts a supplied client CA whose key is a secret", () => {
        const config = valid({
            natsClientCaCertPem: "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----",
            natsClientCaKeyPem: pemBlock("PRIVATE KEY", "k"),
        }, ["natsClientCaKeyPem"]);
        assert.ok(config.nats.clientCa?.keyPem.startsWith(pemBlock("PRIVATE KEY", "").split("\n")[0]));
    });

    it("rejects unknown keys and suggests the closest known one", () => {
        const error = onlyError({ "meshstack:natsNodeCout": "3" });
        assert.match(error.message, /unknown key; did you mean meshstack:natsNodeCount\?/);
    });

    it("ignores other providers' namespaces", () => {
        valid({ "linode:objUseTempKeys": "true", "aws:region": "us-east-1" });
    });

    it("declares exactly the same keys and types in Pulumi.yaml", () => {
        const project = YAML.parse(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8")) as { config: Record<string, { type: string; secret?: boolean }> };
        assert.deepStrictEqual(Object.keys(project.config).sort(), Object.keys(CONFIG_KEYS).sort());
        for (const [key, spec] of Object.entries(CONFIG_KEYS)) {
            assert.strictEqual(project.config[key].type, spec.type, `type of ${key}`);
            assert.strictEqual(project.config[key].secret ?? false, spec.secret ?? false, `secret flag of ${key}`);
        }
    });

    it("accepts the committed dev stack file as it is", () => {
        const raw = rawConfigFromStackFile(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.dev.yaml"), "utf8"));
        const result = parseStackConfig(raw);
        assert.ok(result.ok, result.ok ? "" : formatConfigErrors(result.errors));
    });
});
