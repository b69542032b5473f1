import * as assert from "assert";
import * as fs from "fs";
import { boxConfig, boxMachineConfig, natsServerTarball } from "../../box/stackConfig";
import { NATS_SERVER_RELEASE } from "../../lib/natsRelease";
import { previousNatsServerVersion } from "../support/tools";

describe("box stack config: the stack file as the CLI reads it, with the box's and the caller's overrides", () => {
    it("runs the dev stack, the one the box tier boots", () => {
        const config = boxConfig("dev", {});
        assert.strictEqual(config.project, "meshstack");
        assert.strictEqual(config.values["meshstack:natsClusterName"], "meshstack-dev");
    });

    it("puts a bare key in the project's namespace and keeps a qualified one as given", () => {
        const config = boxConfig("dev", { natsNodeCount: "5", "linode:objUseTempKeys": "false" });
        assert.strictEqual(config.values["meshstack:natsNodeCount"], "5");
        assert.strictEqual(config.values["linode:objUseTempKeys"], "false");
        assert.strictEqual(config.values.natsNodeCount, undefined);
    });

    it("refuses an override the stack's own rules refuse, naming the stack file", () => {
        assert.throws(() => boxConfig("dev", { natsNodeCount: "two" }), /^Error: Pulumi\.dev\.yaml with the box's overrides: .*meshstack:natsNodeCount = "two": is not an integer/s);
    });

    it("refuses what the box cannot stand in for, every problem at once", () => {
        assert.throws(() => boxConfig("dev", { natsDnsDomain: "example.com", natsImage: "linode/ubuntu24.04", wgCacheImage: "linode/debian11" }), {
            message: [
                "the box cannot run stack dev:",
                "  - meshstack:wgCacheImage is linode/debian11; the box has linode/debian12 only",
                "  - meshstack:natsImage is linode/ubuntu24.04; the box has linode/debian12 only",
                "  - meshstack:natsDnsDomain is set; the box has no Linode DNS (unset it for the box)",
            ].join("\n"),
        });
        assert.throws(() => boxConfig("dev", { objectStoreKind: "s3", objectStoreEndpoint: "https://s3.example.com" }), /objectStoreKind is s3; the box stands in for Linode Object Storage only/);
        assert.throws(() => boxConfig("dev", { natsNodeImages: '["nats-1=linode/debian13"]' }), /meshstack:natsNodeImages gives nats-1 linode\/debian13; the box has linode\/debian12 only/);
    });

    it("refuses a stack with no stack file", () => {
        assert.throws(() => boxConfig("no-such-stack", {}), { message: "no stack file Pulumi.no-such-stack.yaml; create it or pass --stack NAME" });
    });

    it("runs the release a box run asks for from its mirror: the older one setup builds passes the stack's checksum rule, the pinned one keeps its defaults", () => {
        const older = previousNatsServerVersion();
        const machine = boxMachineConfig("https://10.0.2.2:9000", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIampt1CPGT2o63CzgKlGlgfWB2qAls7mW0A69GBG5kl box", older);
        const sha256 = fs.readFileSync(`${natsServerTarball(older)}.sha256`, "utf8").split(/\s+/)[0];
        assert.deepStrictEqual([machine.natsServerSha256Amd64, machine.natsServerSha256Arm64], [sha256, sha256]);
        assert.notStrictEqual(sha256, NATS_SERVER_RELEASE.sha256.amd64);
        assert.strictEqual(boxConfig("dev", { ...machine, natsServerVersion: older }).values["meshstack:natsServerVersion"], older);
        const pinned = boxMachineConfig("https://10.0.2.2:9000", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIampt1CPGT2o63CzgKlGlgfWB2qAls7mW0A69GBG5kl box");
        assert.strictEqual(pinned.natsServerSha256Arm64, undefined, "the pinned release's arm64 checksum is the default");
        assert.strictEqual(pinned.natsServerSha256Amd64, fs.readFileSync(`${natsServerTarball()}.sha256`, "utf8").split(/\s+/)[0]);
    });
});
