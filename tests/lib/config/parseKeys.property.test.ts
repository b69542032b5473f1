import * as assert from "assert";
import fc from "fast-check";
import { CONFIG_KEYS, parseStackConfig, pemBlock, qualify, StackConfig } from "../../../lib/config";

const RUNS = { numRuns: 150 };

function sshEd25519(): string {
    const field = (bytes: Buffer) => {
        const length = Buffer.alloc(4);
        length.writeUInt32BE(bytes.length);
        return Buffer.concat([length, bytes]);
    };
    return `ssh-ed25519 ${Buffer.concat([field(Buffer.from("ssh-ed25519")), field(Buffer.alloc(32, 7))]).toString("base64")} ops@example`;
}

/** Where each key's value lands in the parsed config. */
const WHERE: Record<string, (c: StackConfig) => unknown> = {
    region: (c) => c.region,
    sshAuthorizedKeys: (c) => c.access.sshAuthorizedKeys,
    breakGlassSshCidrs: (c) => c.access.breakGlassSshCidrs,
    objectStoreKind: (c) => c.objectStore.kind,
    objectStoreRegion: (c) => c.objectStore.region,
    objectStoreEndpoint: (c) => c.objectStore.endpoint,
    bootstrapPrefix: (c) => c.objectStore.bootstrapPrefix,
    bootstrapObjectExpiryDays: (c) => c.objectStore.bootstrapObjectExpiryDays,
    agentKeyGeneration: (c) => c.objectStore.agentKeyGeneration,
    bootstrapUrlExpirySeconds: (c) => c.bootstrap.urlExpirySeconds,
    metadataLimitBytes: (c) => c.bootstrap.metadataLimitBytes,
    gzipUserDataImages: (c) => c.bootstrap.gzipUserDataImages,
    wgCacheInstanceType: (c) => c.wgCache.instanceType,
    wgCacheImage: (c) => c.wgCache.image,
    wgListenPort: (c) => c.wgCache.listenPort,
    wgCacheAddress: (c) => c.wgCache.address,
    wgPubkeyPollTimeoutSeconds: (c) => c.wgCache.pubkeyPollTimeoutSeconds,
    natsNodeCount: (c) => c.nats.nodeCount,
    natsInstanceType: (c) => c.nats.instanceType,
    natsImage: (c) => c.nats.image,
    natsClusterName: (c) => c.nats.clusterName,
    natsClientCidrs: (c) => c.nats.clientCidrs,
    natsKvReplicas: (c) => c.nats.kvReplicas,
    natsClientCaCertPem: (c) => c.nats.clientCa?.certPem,
    natsClientCaKeyPem: (c) => c.nats.clientCa?.keyPem,
    natsDnsDomain: (c) => c.nats.dnsDomain,
    natsKvBucket: (c) => c.nats.kvBucket,
    natsRejoinTimeoutSeconds: (c) => c.nats.rejoinTimeoutSeconds,
    natsServerVersion: (c) => c.nats.serverRelease.version,
    natsServerDownloadUrl: (c) => c.nats.serverRelease.urlTemplate,
    natsServerSha256Amd64: (c) => c.nats.serverRelease.sha256.amd64,
    natsServerSha256Arm64: (c) => c.nats.serverRelease.sha256.arm64,
    acceptRebuilds: (c) => c.lifecycle.acceptRebuilds,
};

/**
 * Keys that reach the parsed config only together with a whole Proxmox VE
 * setup (guests, endpoint, token, storage, archive or template), where one
 * key's value alone cannot round-trip; their rules are tested with complete
 * setups in tests/lib/config/index.test.ts ("Proxmox VE golden-image guests"). The
 * operator peers are parsed into records and checked against the hub's
 * subnet: tests/lib/config/index.test.ts and tests/lib/meshPeers*.test.ts hold their rules.
 * The per-node NATS images become images by index, checked against
 * natsNodeCount: tests/lib/config/index.test.ts and tests/lib/natsRollout.test.ts.
 * The catalog's extra ids land nowhere themselves: they widen what region
 * and the instance types accept (tests/lib/config/stackConfig.test.ts).
 * Nor do the streams whose loss the stack accepts: the stream guard reads
 * them from the stack config of the `up` that deletes a node
 * (providers/natsStreamGuard.ts; tests/lib/config/index.test.ts and
 * tests/providers/natsStreamGuard*.test.ts).
 */
const TESTED_WITH_A_WHOLE_SETUP = [...Object.keys(CONFIG_KEYS).filter((key) => key.startsWith("proxmox")), "wgOperatorPeers", "natsNodeImages", "linodeCatalogExtraIds", "natsAcceptStreamLoss"];

/** Valid values of each key, so generated values are accepted often enough to test the round trip. */
const EXAMPLES: Record<string, string[]> = {
    region: ["us-east", "de-fra-2", "US-EAST", "us_east"],
    sshAuthorizedKeys: [sshEd25519(), "ssh-ed25519 Zm9v"],
    breakGlassSshCidrs: ["203.0.113.7/32", "2001:db8::/48", "0.0.0.0/0", "1:2:3/64", "10.0.0.0/33"],
    natsClientCidrs: ["198.51.100.0/24", "::/0", ":/0"],
    objectStoreKind: ["linode", "s3", "S3"],
    objectStoreRegion: ["us-east", "us-ord", "us-east-1", "x", "a".repeat(33)],
    objectStoreEndpoint: ["https://s3.example.net", "http://127.0.0.1:9000/", "https://s3.example.net/path"],
    bootstrapPrefix: ["bootstrap/", "a/b-c/", "bootstrap", "/x/", "A/"],
    gzipUserDataImages: ["linode/debian12", "private/123", "debian12"],
    wgCacheInstanceType: ["g6-nanode-1", "nanode"],
    natsInstanceType: ["g6-standard-2"],
    wgCacheImage: ["linode/debian12", "private/9"],
    natsImage: ["linode/ubuntu24.04"],
    wgCacheAddress: ["10.44.0.1/24", "10.9.0.5/16", "10.44.0.0/24", "10.44.0.255/24", "10.44.0.1/30", "10.44.0.1/31", "10.44.0.11/24"],
    natsClusterName: ["meshstack", "a", "my_cluster", "-x", "a".repeat(33)],
    natsClientCaCertPem: [pemBlock("CERTIFICATE", "Y2VydA==")],
    natsClientCaKeyPem: [pemBlock("PRIVATE KEY", "a2V5"), pemBlock("EC PRIVATE KEY", "a2V5")],
    natsDnsDomain: ["example.net", "Example.net", "a.b.c.io"],
    natsKvBucket: ["control", "with space"],
    natsServerVersion: ["v2.14.7", "v2.15.0", "v2.15.0-RC.1", "2.15.0", "v2.15", "v2.15.0;x"],
    natsServerDownloadUrl: ["https://mirror.example.net/nats/{version}/nats-server-{version}-linux-{arch}.tar.gz", "http://10.0.0.1/{arch}.tgz", "https://x/$(id)/{arch}", "https://x/no-arch.tgz"],
    natsServerSha256Amd64: ["e5c20b1cb2c0566b54c544312e91e011f9e130c5c80f16a14f4cf28ef30b8be2", "E5C20B1CB2C0566B54C544312E91E011F9E130C5C80F16A14F4CF28EF30B8BE2"],
    natsServerSha256Arm64: ["50e0258a1b7290f3fe2e4f17506b74a90ffb1dd77867ae3a402eb0c9e2b0d40f", "50e0258a"],
    acceptRebuilds: ["nats-0@1a2b3c4d", "wg-cache-node@00000000", "nats-0", "NATS-0@1a2b3c4d", "nats-0@1a2b3c4"],
};

/** Companion values a key needs to be accepted on its own (pairs and keys that depend on another). */
const COMPANIONS: Record<string, Record<string, string>> = {
    objectStoreEndpoint: { objectStoreKind: "s3" },
    natsClientCaCertPem: { natsClientCaKeyPem: pemBlock("PRIVATE KEY", "a2V5") },
    natsClientCaKeyPem: { natsClientCaCertPem: pemBlock("CERTIFICATE", "Y2VydA==") },
    natsKvBucket: { natsClientCidrs: JSON.stringify(["198.51.100.0/24"]) },
    natsRejoinTimeoutSeconds: { natsClientCidrs: JSON.stringify(["198.51.100.0/24"]) },
    natsServerVersion: { natsServerSha256Amd64: "a".repeat(64), natsServerSha256Arm64: "b".repeat(64) },
};
const SECRET_KEYS = new Set(Object.keys(CONFIG_KEYS).filter((k) => CONFIG_KEYS[k].secret).map(qualify));

const junk = fc.constantFrom("", " ", "<REPLACE-ME>", "CHANGEME", "TODO", "true", "[]", "null");
function rawValue(key: string): fc.Arbitrary<string> {
    const spec = CONFIG_KEYS[key];
    const examples = EXAMPLES[key] ?? [];
    switch (spec.type) {
        case "integer":
            return fc.oneof(
                fc.integer({ min: -10, max: 70_000 }).map(String),
                fc.integer({ min: -1, max: 700_000 }).map(String),
                fc.integer({ min: 0, max: 99 }).map((n) => ` ${n} `),
                fc.constantFrom("1.5", "1e3", "0x10", "abc", "-0"),
                junk,
            );
        case "array":
            return fc.oneof(
                fc.array(fc.oneof(fc.constantFrom(...(examples.length ? examples : ["x"])), fc.string({ maxLength: 12 })), { maxLength: 3 }).map((a) => JSON.stringify(a)),
                fc.constantFrom("not json", "{}", "[1]", '[""]', '["<x>"]'),
                junk,
            );
        default:
            return fc.oneof(fc.constantFrom(...(examples.length ? examples : ["x"])), fc.string({ maxLength: 16 }), junk);
    }
}

/** What a raw value must come back as when accepted. */
function expectedValue(key: string, raw: string): unknown {
    const spec = CONFIG_KEYS[key];
    if (spec.optional && raw === "") return spec.default;
    if (spec.type === "integer") return Number(raw.trim());
    if (spec.type === "array") return JSON.parse(raw);
    return raw;
}

describe("config parsing (properties, key by key)", () => {
    it("knows where every declared key lands in the parsed config", () => {
        assert.deepStrictEqual([...Object.keys(WHERE), ...TESTED_WITH_A_WHOLE_SETUP].sort(), Object.keys(CONFIG_KEYS).sort());
    });

    for (const key of Object.keys(WHERE)) {
        it(`${key}: an accepted value round-trips, a rejected one is reported against the key with what is allowed`, () => {
            const seen = { accepted: 0, rejected: 0 };
            fc.assert(fc.property(rawValue(key), (raw) => {
                const values = Object.fromEntries(Object.entries({ ...COMPANIONS[key], [key]: raw }).map(([k, v]) => [qualify(k), v]));
                const result = parseStackConfig({ values, secretKeys: SECRET_KEYS });
                seen[result.ok ? "accepted" : "rejected"]++;
                if (result.ok) {
                    assert.deepStrictEqual(WHERE[key](result.value), expectedValue(key, raw));
                    return;
                }
                const naming = result.errors.filter((e) => e.key === qualify(key) || e.message.includes(qualify(key)) || e.message.includes(`${key} `));
                assert.ok(naming.length > 0, `no error names ${qualify(key)}: ${JSON.stringify(result.errors)}`);
                for (const error of result.errors) assert.match(error.message, /allowed: /, JSON.stringify(error));
                for (const error of result.errors.filter((e) => e.key === qualify(key) && e.value !== undefined)) {
                    // As written, or as read (a rule over two keys shows the number it compared).
                    const shown = CONFIG_KEYS[key].secret ? ["[secret]"] : [raw, CONFIG_KEYS[key].type === "integer" ? String(Number(raw.trim())) : raw];
                    assert.ok(shown.includes(error.value!), `${key} shown as ${JSON.stringify(error.value)}, written ${JSON.stringify(raw)}`);
                }
            }), RUNS);
            assert.ok(seen.accepted > 0 && seen.rejected > 0, `the values tried must include accepted and rejected ones: ${JSON.stringify(seen)}`);
        });
    }
});
