import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { CONFIG_KEYS, ConfigError, formatConfigErrors, parseStackConfig, pemBlock, qualify, StackConfig } from "../../../lib/config";
import { cliStackConfigOf } from "../../../tooling/cliConfig";
import { NATS_SERVER_RELEASE } from "../../../lib/natsRelease";

const REPO_ROOT = path.resolve(__dirname, "../../..");

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

    it("takes another nats-server version with that release's checksums, and refuses it with the pinned release's, naming each key left at them", () => {
        const next = valid({ natsServerVersion: "v2.15.0", natsServerSha256Amd64: "a".repeat(64), natsServerSha256Arm64: "b".repeat(64) });
        assert.deepStrictEqual(next.nats.serverRelease, { ...NATS_SERVER_RELEASE, version: "v2.15.0", sha256: { amd64: "a".repeat(64), arm64: "b".repeat(64) } });
        const stale = errorsOf({ natsServerVersion: "v2.15.0", natsServerSha256Amd64: "a".repeat(64) });
        assert.deepStrictEqual(stale.map((e) => [e.key, e.value]), [["meshstack:natsServerSha256Arm64", NATS_SERVER_RELEASE.sha256.arm64]]);
        assert.match(stale[0].message, new RegExp(`is ${NATS_SERVER_RELEASE.version}'s checksum, but meshstack:natsServerVersion is v2\\.15\\.0; allowed: the v2\\.15\\.0 tarball's sha256 in meshstack:natsServerSha256Arm64$`));
        assert.match(errorsOf({ natsServerVersion: "v2.15.0" })[0].message, /in meshstack:natsServerSha256Amd64 and meshstack:natsServerSha256Arm64$/);
        const notATag = errorsOf({ natsServerVersion: "latest" });
        assert.deepStrictEqual(notATag.map((e) => e.key), ["meshstack:natsServerVersion"]);
        assert.match(notATag[0].message, /allowed: a release tag such as v2\.14\.7/);
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

    it("tells a stack that still sets the retired cleanup delay what replaced it", () => {
        const error = onlyError({ "meshstack:bootstrapCleanupDelaySeconds": "300" });
        assert.strictEqual(error.key, "meshstack:bootstrapCleanupDelaySeconds");
        assert.match(error.message, /was removed: .* deleted as soon as the node publishes .* or after meshstack:wgPubkeyPollTimeoutSeconds; delete this line/);
    });

    it("ignores other providers' namespaces", () => {
        valid({ "linode:objUseTempKeys": "true", "aws:region": "us-east-1" });
    });

    it("gives every key a default or makes it optional, so no stack file must set it", () => {
        const required = Object.entries(CONFIG_KEYS).filter(([, spec]) => spec.default === undefined && !spec.optional).map(([key]) => key);
        assert.deepStrictEqual(required, []);
    });

    it("reads an optional key set to the empty string as unset", () => {
        const config = valid({ natsDnsDomain: "", natsKvBucket: "", objectStoreEndpoint: "", natsClientCaCertPem: "", natsClientCaKeyPem: "" });
        assert.strictEqual(config.nats.dnsDomain, undefined);
        assert.strictEqual(config.nats.kvBucket, undefined);
        assert.strictEqual(config.objectStore.endpoint, undefined);
        assert.strictEqual(config.nats.clientCa, undefined);
    });

    it("accepts every committed stack file as the CLI hands it over", () => {
        const stacks = fs.readdirSync(REPO_ROOT).filter((f) => /^Pulumi\.[A-Za-z0-9_.-]+\.yaml$/.test(f));
        assert.ok(stacks.includes("Pulumi.dev.yaml"));
        for (const file of stacks) {
            const cli = cliStackConfigOf(REPO_ROOT, file.slice("Pulumi.".length, -".yaml".length), file);
            assert.ok(cli.ok, `${file}: ${cli.ok ? "" : cli.errors.join("; ")}`);
            const result = parseStackConfig(cli.raw);
            assert.ok(result.ok, `${file}: ${result.ok ? "" : formatConfigErrors(result.errors)}`);
        }
    });

    describe("bad inputs refused at plan time", () => {
        for (const bad of [":/0", "12345::/64", "1:2:3/64", "1::2::3/64", "fe80::1/129", "2001:db8::/048x"]) {
            it(`refuses the malformed IPv6 CIDR ${bad}`, () => {
                const error = onlyError({ breakGlassSshCidrs: JSON.stringify([bad]) });
                assert.match(error.message, /is not a CIDR/);
            });
        }

        it("accepts well-formed IPv6 CIDRs", () => {
            const cidrs = ["::/0", "2001:db8::/32", "fe80::1/128", "::ffff:192.0.2.1/128", "2001:db8:0:0:0:0:0:1/128"];
            assert.deepStrictEqual(valid({ natsClientCidrs: JSON.stringify(cidrs) }).nats.clientCidrs, cidrs);
        });

        it("refuses an SSH key whose body is not a key blob", () => {
            const error = onlyError({ sshAuthorizedKeys: '["ssh-ed25519 Zm9v"]' });
            assert.strictEqual(error.key, "meshstack:sshAuthorizedKeys");
            assert.match(error.message, /item 0 .*truncated key body|not a ssh-ed25519 key/);
        });

        it("refuses an SSH key whose blob names another key type", () => {
            const rsaBlob = Buffer.concat([lengthPrefixed("ssh-rsa"), lengthPrefixed(Buffer.alloc(3, 1)), lengthPrefixed(Buffer.alloc(257, 2))]);
            assert.match(onlyError({ sshAuthorizedKeys: JSON.stringify([`ssh-ed25519 ${rsaBlob.toString("base64")}`]) }).message, /not a ssh-ed25519 key/);
        });

        // Each would reach every node's agent, whose renderer refuses the same lines, and with them the whole desired state.
        const unfitLines: [string, () => string, RegExp][] = [
            ["two keys in one item", () => `${ED25519_KEY}\n${ED25519_KEY.replace("operator@", "other@")}`, /item 0 .*holds a line break or another control character; one public key per item, on one line/],
            ["an options prefix", () => `from="203.0.113.7" ${ED25519_KEY}`, /item 0 .*does not start with a key type \(ssh-ed25519, .*\); options such as from= or command= are not allowed/],
            ["a body ssh-keygen would not write (bits set below the padding)", () => `ecdsa-sha2-nistp256 ${nonCanonicalEcdsaBody()}`, /item 0 .*has a key body that is not base64 as ssh-keygen writes it/],
        ];
        for (const [what, line, message] of unfitLines) {
            it(`refuses an SSH key line with ${what}, as the nodes' agents would`, () => {
                const error = onlyError({ sshAuthorizedKeys: JSON.stringify([line()]) });
                assert.strictEqual(error.key, "meshstack:sshAuthorizedKeys");
                assert.match(error.message, message);
            });
        }

        it("accepts a real ed25519 key", () => {
            const config = valid({ sshAuthorizedKeys: JSON.stringify([ED25519_KEY]) });
            assert.deepStrictEqual(config.access.sshAuthorizedKeys, [ED25519_KEY]);
        });

        it("refuses a misspelled namespace instead of ignoring its keys", () => {
            const error = onlyError({ "meshstak:natsNodeCount": "5" });
            assert.strictEqual(error.key, "meshstak:natsNodeCount");
            assert.match(error.message, /unknown namespace "meshstak"; did you mean meshstack:natsNodeCount\?/);
        });

        it("refuses the network address as the hub's interface address", () => {
            assert.match(onlyError({ wgCacheAddress: "10.44.0.0/24" }).message, /network address/);
        });

        it("refuses the broadcast address as the hub's interface address", () => {
            assert.match(onlyError({ wgCacheAddress: "10.44.0.255/24" }).message, /broadcast address/);
        });

        it("refuses a cluster name that is not valid in a DNS name", () => {
            const error = onlyError({ natsClusterName: "my_cluster" });
            assert.strictEqual(error.key, "meshstack:natsClusterName");
            assert.match(error.message, /DNS names/);
        });

        it("refuses a KV bucket the deployer could never reach (no client CIDRs)", () => {
            const error = onlyError({ natsKvBucket: "control" });
            assert.strictEqual(error.key, "meshstack:natsKvBucket");
            assert.match(error.message, /natsClientCidrs, which is empty/);
        });

        it("accepts a KV bucket with client CIDRs", () => {
            assert.strictEqual(valid({ natsKvBucket: "control", natsClientCidrs: '["203.0.113.7/32"]' }).nats.kvBucket, "control");
        });

        it("keeps the rejoin wait off by default", () => {
            assert.strictEqual(valid({}).nats.rejoinTimeoutSeconds, 0);
        });

        it("accepts a rejoin wait with client CIDRs", () => {
            assert.strictEqual(valid({ natsRejoinTimeoutSeconds: "900", natsClientCidrs: '["203.0.113.7/32"]' }).nats.rejoinTimeoutSeconds, 900);
        });

        it("refuses a rejoin wait the deployer could never make (no client CIDRs)", () => {
            const error = onlyError({ natsRejoinTimeoutSeconds: "900" });
            assert.deepStrictEqual([error.key, error.value], ["meshstack:natsRejoinTimeoutSeconds", "900"]);
            assert.match(error.message, /natsClientCidrs, which is empty.*allowed: 0, or set natsClientCidrs/);
        });

        it("refuses a rejoin wait shorter than a node's boot, or past two hours, naming what is allowed", () => {
            for (const value of ["30", "7201"]) {
                const error = onlyError({ natsRejoinTimeoutSeconds: value, natsClientCidrs: '["203.0.113.7/32"]' });
                assert.deepStrictEqual([error.key, error.value], ["meshstack:natsRejoinTimeoutSeconds", value]);
                assert.match(error.message, /allowed: 0, or an integer from 60 to 7200/);
            }
        });

        it("refuses KV replicas above JetStream's maximum even with enough nodes", () => {
            const error = onlyError({ natsNodeCount: "7", natsKvReplicas: "7" });
            assert.strictEqual(error.key, "meshstack:natsKvReplicas");
            assert.match(error.message, /1 to 5/);
        });

        it("reports a subnet too small for the cluster together with every other problem", () => {
            const errors = errorsOf({ wgCacheAddress: "10.44.0.1/30", region: "Mars" });
            assert.deepStrictEqual(errors.map((e) => e.key).sort(), ["meshstack:region", "meshstack:wgCacheAddress"]);
            assert.match(errors.find((e) => e.key === "meshstack:wgCacheAddress")!.message, /no room for 3 NATS nodes.*allowed: a prefix of \/28 or wider/);
        });

        it("refuses a hub address on a NATS node's address", () => {
            assert.match(onlyError({ wgCacheAddress: "10.44.0.11/24" }).message, /collides with NATS node 1/);
        });

        it("does not take a name containing 'todo' for a placeholder", () => {
            assert.strictEqual(valid({ natsClusterName: "todo-app" }).nats.clusterName, "todo-app");
        });

        it("still takes TODO written as a marker for a placeholder", () => {
            assert.match(onlyError({ natsClusterName: "TODO" }).message, /placeholder/);
        });
    });

    describe("per-node NATS images (meshstack:natsNodeImages)", () => {
        it("defaults to none: every node runs natsImage", () => {
            assert.deepStrictEqual(valid().nats.nodeImages, {});
        });

        it("reads entries as image by node index", () => {
            assert.deepStrictEqual(valid({ natsNodeImages: JSON.stringify(["nats-1=linode/debian13"]) }).nats.nodeImages, { 1: "linode/debian13" });
        });

        it("names the key, the value and every bad entry, with what is allowed", () => {
            const error = onlyError({ natsNodeImages: JSON.stringify(["nats-5=linode/debian13", "nats-1=ubuntu"]) });
            assert.strictEqual(error.key, "meshstack:natsNodeImages");
            assert.strictEqual(error.value, JSON.stringify(["nats-5=linode/debian13", "nats-1=ubuntu"]));
            assert.match(error.message, /names nats-5, but natsNodeCount 3 has nats-0 to nats-2 only/);
            assert.match(error.message, /"nats-1=ubuntu" is not "nats-<index>=<image>"/);
            assert.match(error.message, /allowed: a list of "nats-<index>=<image>", e\.g\. "nats-0=linode\/debian13", each index below natsNodeCount, each node once$/);
        });
    });

    describe("streams whose loss the stack accepts (meshstack:natsAcceptStreamLoss)", () => {
        it("takes stream names and \"*\"; none by default", () => {
            valid();
            valid({ natsAcceptStreamLoss: JSON.stringify(["KV_control", "ORDERS"]) });
            valid({ natsAcceptStreamLoss: JSON.stringify(["*"]) });
        });

        it("names the key, the value and every item that is not a stream name, with what is allowed, in one report", () => {
            const errors = errorsOf({ natsAcceptStreamLoss: JSON.stringify(["a.b", "ok", "two words"]), natsNodeCount: "2" });
            assert.deepStrictEqual(errors.map((e) => e.key), ["meshstack:natsNodeCount", "meshstack:natsAcceptStreamLoss"]);
            const error = errors[1];
            assert.strictEqual(error.value, JSON.stringify(["a.b", "ok", "two words"]));
            assert.match(error.message, /item 0 \("a\.b"\) is not a stream name; item 2 \("two words"\) is not a stream name/);
            assert.match(error.message, /allowed: a list of JetStream stream names \(no spaces, "\.", "\*", ">", "\/" or "\\"\), such as KV_control, or "\*" for every stream$/);
        });
    });

    describe("operator peers (meshstack:wgOperatorPeers)", () => {
        const ANA = "laptop-ana 3CMqZbbnm3mWqTY1Mp5FsXAEz6MgX6j8mb9Ifv1+hGE= 10.44.0.200";

        it("parses each entry into name, key and address", () => {
            assert.deepStrictEqual(valid({ wgOperatorPeers: JSON.stringify([ANA]) }).wgCache.operatorPeers, [
                { name: "laptop-ana", publicKey: "3CMqZbbnm3mWqTY1Mp5FsXAEz6MgX6j8mb9Ifv1+hGE=", address: "10.44.0.200" },
            ]);
        });

        it("defaults to none", () => {
            assert.deepStrictEqual(valid().wgCache.operatorPeers, []);
        });

        it("names every bad entry in one error against the key, with its value and what is allowed", () => {
            const error = onlyError({ wgOperatorPeers: JSON.stringify([ANA, "laptop-ben notakey 10.44.0.201", "laptop-cy 3CMqZbbnm3mWqTY1Mp5FsXAEz6MgX6j8mb9Ifv1+hGE= 10.44.0.11"]) });
            assert.strictEqual(error.key, "meshstack:wgOperatorPeers");
            assert.match(error.message, /entry 1 \(laptop-ben\): "notakey" is not a WireGuard public key/);
            assert.match(error.message, /entry 2 \(laptop-cy\): address "10\.44\.0\.11" is not allowed; allowed: an address in 10\.44\.0\.0\/24 other than the network, the broadcast, the hub 10\.44\.0\.1 and the NATS range 10\.44\.0\.10-10\.44\.0\.16/);
            assert.match(error.message, /3CMqZbbnm3mWqTY1Mp5FsXAEz6MgX6j8mb9Ifv1\+hGE= is also used by entry 0/);
            assert.doesNotMatch(error.message, /entry 0 \(/, "the good entry is not reported");
        });

        it("checks operator addresses against the hub's subnet as configured", () => {
            const error = onlyError({ wgCacheAddress: "172.20.0.1/16", wgOperatorPeers: JSON.stringify([ANA]) });
            assert.strictEqual(error.key, "meshstack:wgOperatorPeers");
            assert.match(error.message, /address "10\.44\.0\.200" is not allowed; allowed: an address in 172\.20\.0\.0\/16/);
        });

        it("refuses what is not a list of strings, naming the key and what is allowed", () => {
            const error = onlyError({ wgOperatorPeers: "[1]" });
            assert.strictEqual(error.key, "meshstack:wgOperatorPeers");
            assert.match(formatConfigErrors([error]), /meshstack:wgOperatorPeers = "\[1\]": .*allowed: a list of "<name> <WireGuard public key> <address>"/);
        });
    });

    describe("Proxmox VE golden-image guests", () => {
        const guest = "vmid=101;hostname=web-1;rootfsGiB=16;mp=/srv/data:8;mp=/var/lib/app:4:fast;onboot=true";
        const base = {
            proxmoxEndpoint: "https://pve.example.net:8006", proxmoxNode: "pve", proxmoxTokenId: "meshstack@pve!deploy",
            proxmoxTokenSecret: "5f0c3e6e-3d1b-4d7e-9d61-0a1b2c3d4e5f", proxmoxStorage: "local-lvm",
            proxmoxArchive: "local:backup/vzdump-lxc-9000-2026_06_09-20_41_10.tar.zst",
        };

        it("is off with the Pulumi.yaml defaults: every optional string \"\" and no guests", () => {
            const defaults = Object.fromEntries(Object.entries(CONFIG_KEYS).filter(([k, spec]) => k.startsWith("proxmox") && spec.type === "string" && spec.optional).map(([k]) => [k, ""]));
            assert.strictEqual(valid({ ...defaults, proxmoxGuests: "[]" }).proxmox, undefined);
        });

        it("parses guests, with mount points and start on boot, and keeps the token secret secret", () => {
            const config = valid({ ...base, proxmoxGuests: JSON.stringify([guest, "vmid=102;hostname=web-2"]) }, ["proxmoxTokenSecret"]);
            assert.deepStrictEqual(config.proxmox!.guests, [
                { vmid: 101, hostname: "web-1", rootfsGiB: 16, mountPoints: [{ path: "/srv/data", sizeGiB: 8 }, { path: "/var/lib/app", sizeGiB: 4, storage: "fast" }], startOnBoot: true },
                { vmid: 102, hostname: "web-2", mountPoints: [], startOnBoot: false },
            ]);
            assert.strictEqual(config.proxmox!.archive, base.proxmoxArchive);
            const clear = errorsOf({ ...base, proxmoxGuests: JSON.stringify([guest]) });
            assert.deepStrictEqual(clear.map((e) => [e.key, e.value]), [["meshstack:proxmoxTokenSecret", "[secret]"]]);
        });

        it("names every problem in every guest at once", () => {
            const error = onlyError({ ...base, proxmoxGuests: JSON.stringify(["vmid=5;hostname=Web_1;mp=srv:0", "hostname=b;color=red", "vmid=101;hostname=x", "vmid=101;hostname=y"]) }, ["proxmoxTokenSecret"]);
            assert.strictEqual(error.key, "meshstack:proxmoxGuests");
            for (const part of [/item 0 .*vmid "5"/, /item 0 .*hostname "Web_1"/, /item 0 .*mp "srv:0"/, /item 1 .*unknown field "color"/, /item 1 .*vmid is missing/, /vmid 101 is used by more than one guest/, /allowed: a list of "vmid=/]) {
                assert.match(error.message, part);
            }
        });

        it("with guests, requires the endpoint, node, token, storage and one golden source, all reported together", () => {
            const errors = errorsOf({ proxmoxGuests: JSON.stringify([guest]) });
            assert.deepStrictEqual(errors.map((e) => e.key).sort(), [
                "meshstack:proxmoxArchive", "meshstack:proxmoxEndpoint", "meshstack:proxmoxNode", "meshstack:proxmoxStorage", "meshstack:proxmoxTokenId", "meshstack:proxmoxTokenSecret",
            ]);
        });

        it("building the golden needs the SSH key and excludes a given archive; CA bundle and fingerprint exclude each other", () => {
            const errors = errorsOf({
                ...base, proxmoxGuests: JSON.stringify([guest]), proxmoxGoldenTemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                proxmoxCaBundlePem: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----", proxmoxTlsFingerprint: Array(32).fill("AB").join(":"),
            }, ["proxmoxTokenSecret"]);
            assert.deepStrictEqual(errors.map((e) => e.key).sort(), ["meshstack:proxmoxGoldenTemplate", "meshstack:proxmoxSshPrivateKey", "meshstack:proxmoxTlsFingerprint"]);
        });

        it("a golden built by the stack is reached over SSH at the endpoint's host unless told otherwise", () => {
            const { archive: _archive, ...rest } = { ...base, archive: undefined };
            const config = valid({
                ...rest, proxmoxArchive: "", proxmoxGuests: JSON.stringify([guest]), proxmoxGoldenTemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                proxmoxSshPrivateKey: pemBlock("OPENSSH PRIVATE KEY", "k"),
            }, ["proxmoxTokenSecret", "proxmoxSshPrivateKey"]);
            assert.deepStrictEqual({ ...config.proxmox!.golden, sshPrivateKey: "-" }, {
                template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", vmid: 9000, packages: [], backupStorage: "local", bridge: "vmbr0", sshHost: "pve.example.net", sshPrivateKey: "-",
            });
        });
    });
});

function lengthPrefixed(value: string | Buffer): Buffer {
    const bytes = typeof value === "string" ? Buffer.from(value, "latin1") : value;
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    return Buffer.concat([length, bytes]);
}

/** An ecdsa-sha2-nistp256 body whose last character before the padding has its unused bits set: it decodes, but is not what base64 writes. */
function nonCanonicalEcdsaBody(): string {
    const body = Buffer.concat([lengthPrefixed("ecdsa-sha2-nistp256"), lengthPrefixed("nistp256"), lengthPrefixed(Buffer.alloc(65, 0))]).toString("base64");
    assert.match(body, /A=$/);
    return `${body.slice(0, -2)}B=`;
}
const ED25519_KEY = `ssh-ed25519 ${Buffer.concat([lengthPrefixed("ssh-ed25519"), lengthPrefixed(Buffer.alloc(32, 7))]).toString("base64")} operator@example`;
