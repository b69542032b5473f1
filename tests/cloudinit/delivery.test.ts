import * as assert from "assert";
import * as zlib from "zlib";
import {
    bootstrapObjectKey,
    chooseDelivery,
    deliveredUserData,
    DeliveryChoice,
    describeDelivery,
    GZIP_HEADER_OS_BYTE_OFFSET,
    GZIP_HEADER_OS_UNKNOWN,
    gzipAcceptedFor,
    gzipUserData,
    planBootstrapDelivery,
    renderIncludePointer,
    DeliveryResult,
} from "../../cloudinit/delivery";
import { LINODE_METADATA_SAFE_LIMIT_BYTES } from "../../lib/limits";
import { cloudConfigOfBytes } from "../support/cloudInit";
import { sha256Hex } from "../../lib/digest";

const LIMIT = LINODE_METADATA_SAFE_LIMIT_BYTES;
const GZIP_ON = { limitBytes: LIMIT, gzipAccepted: true };
const GZIP_OFF = { limitBytes: LIMIT, gzipAccepted: false };

function value<T>(result: DeliveryResult<T>): T {
    if (!result.ok) assert.fail(`expected a value, got the error: ${result.error}`);
    return result.value;
}

function error<T>(result: DeliveryResult<T>): string {
    if (result.ok) assert.fail(`expected an error, got ${JSON.stringify(result.value)}`);
    return result.error;
}

/** The smallest incompressible cloud-config at or above `from` bytes whose gzip is exactly `gzipBytes`. */
function withGzipSize(gzipBytes: number, from: number): string {
    for (let bytes = from; bytes < from + 2000; bytes++) {
        const text = cloudConfigOfBytes(bytes, "incompressible");
        if (gzipUserData(text).length === gzipBytes) return text;
    }
    throw new Error(`no incompressible cloud-config from ${from} bytes gzips to exactly ${gzipBytes}`);
}

describe("bootstrap delivery decision (boundaries, measured on unencoded bytes)", () => {
    it("delivers inline at exactly the limit (the seed's `size < limit` did not)", () => {
        const choice = value(chooseDelivery(cloudConfigOfBytes(LIMIT, "incompressible"), GZIP_OFF));
        assert.deepStrictEqual([choice.method, choice.rawBytes, choice.gzipBytes], ["inline", LIMIT, undefined]);
    });

    it("gzips one byte over the limit when the image accepts gzip and the gzip fits", () => {
        const text = cloudConfigOfBytes(LIMIT + 1, "compressible");
        const choice = value(chooseDelivery(text, GZIP_ON));
        assert.strictEqual(choice.method, "gzip");
        assert.strictEqual(choice.rawBytes, LIMIT + 1);
        assert.strictEqual(choice.gzipBytes, gzipUserData(text).length);
        assert.ok(choice.gzipBytes! < LIMIT);
    });

    it("goes to the object store one byte over the limit when the image does not accept gzip, even though the gzip would fit", () => {
        const choice = value(chooseDelivery(cloudConfigOfBytes(LIMIT + 1, "compressible"), GZIP_OFF));
        assert.strictEqual(choice.method, "object");
        assert.ok(choice.gzipBytes! < LIMIT);
        assert.match(choice.reason, /gzipUserDataImages/);
    });

    it("gzips when the gzip is exactly the limit", () => {
        const text = withGzipSize(LIMIT, 23_000);
        assert.deepStrictEqual([value(chooseDelivery(text, GZIP_ON)).method, gzipUserData(text).length], ["gzip", LIMIT]);
    });

    it("goes to the object store when the gzip is one byte over the limit", () => {
        const text = withGzipSize(LIMIT + 1, 23_000);
        const choice = value(chooseDelivery(text, GZIP_ON));
        assert.deepStrictEqual([choice.method, choice.gzipBytes], ["object", LIMIT + 1]);
        assert.match(choice.reason, /even gzipped/);
    });

    it("goes to the object store when even the gzip is far over the limit", () => {
        const choice = value(chooseDelivery(cloudConfigOfBytes(40_000, "incompressible"), GZIP_ON));
        assert.strictEqual(choice.method, "object");
        assert.ok(choice.gzipBytes! > LIMIT);
    });

    it("counts UTF-8 bytes, not characters", () => {
        const text = "#cloud-config\n# " + "é".repeat(LIMIT / 2) + "\n";
        const choice = value(chooseDelivery(text, GZIP_OFF));
        assert.ok(text.length <= LIMIT);
        assert.deepStrictEqual([choice.method, choice.rawBytes], ["object", Buffer.byteLength(text, "utf8")]);
    });

    it("honours a raised limit from meshstack:metadataLimitBytes", () => {
        const choice = value(chooseDelivery(cloudConfigOfBytes(40_000, "incompressible"), { limitBytes: 65535, gzipAccepted: false }));
        assert.deepStrictEqual([choice.method, choice.limitBytes], ["inline", 65535]);
    });

    it("returns an error naming the config key for a limit Linode does not allow", () => {
        assert.match(error(chooseDelivery("#cloud-config\n", { limitBytes: 65536, gzipAccepted: false })), /meshstack:metadataLimitBytes is 65536; allowed: an integer from 1024 to 65535/);
    });

    it("returns an error naming the config key for a limit below Linode's minimum or not a whole number", () => {
        for (const limitBytes of [1023, 0, -1, 16384.5, Number.NaN]) {
            assert.match(error(chooseDelivery("#cloud-config\n", { limitBytes, gzipAccepted: false })), new RegExp(`meshstack:metadataLimitBytes is ${limitBytes}; allowed`), String(limitBytes));
        }
    });

    it("returns an error for an empty cloud-config", () => {
        assert.match(error(chooseDelivery("", GZIP_ON)), /empty/);
    });
});

describe("bootstrap delivery per image and stack config", () => {
    const bootstrap = { metadataLimitBytes: LIMIT, gzipUserDataImages: ["linode/debian12"], urlExpirySeconds: 3600 };

    it("accepts gzip only for images listed in meshstack:gzipUserDataImages", () => {
        assert.deepStrictEqual([gzipAcceptedFor("linode/debian12", ["linode/debian12"]), gzipAcceptedFor("linode/ubuntu24.04", ["linode/debian12"])], [true, false]);
    });

    it("plans gzip for a listed image and object for another one with the same content", () => {
        const text = cloudConfigOfBytes(LIMIT + 1, "compressible");
        assert.strictEqual(value(planBootstrapDelivery(text, "linode/debian12", bootstrap)).method, "gzip");
        assert.strictEqual(value(planBootstrapDelivery(text, "linode/ubuntu24.04", bootstrap)).method, "object");
    });

    it("describes an inline choice without a gzip size", () => {
        const choice: DeliveryChoice = { method: "inline", rawBytes: 900, limitBytes: LIMIT, reason: "900 bytes fit the 16384-byte limit" };
        assert.strictEqual(describeDelivery(choice), "bootstrap delivery: inline (raw 900 bytes, limit 16384): 900 bytes fit the 16384-byte limit");
    });

    it("describes the choice with method, sizes and limit for the log and the plan", () => {
        const choice: DeliveryChoice = { method: "gzip", rawBytes: 20000, gzipBytes: 4000, limitBytes: LIMIT, reason: "gzip (4000 bytes) fits the 16384-byte limit" };
        assert.strictEqual(describeDelivery(choice), "bootstrap delivery: gzip (raw 20000 bytes, gzip 4000 bytes, limit 16384): gzip (4000 bytes) fits the 16384-byte limit");
    });
});

describe("delivered user-data", () => {
    const url = "https://us-east-1.linodeobjects.com/b/bootstrap/dev/nats-0/abc-0123.cloud-config?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00ff";

    it("gzip is the same bytes on every machine (no timestamp, pinned OS byte) and gunzips to the original", () => {
        const text = cloudConfigOfBytes(20_000, "compressible");
        const once = gzipUserData(text);
        assert.ok(once.equals(gzipUserData(text)));
        assert.strictEqual(once.readUInt32LE(4), 0, "mtime must be zero");
        assert.strictEqual(once[GZIP_HEADER_OS_BYTE_OFFSET], GZIP_HEADER_OS_UNKNOWN);
        assert.strictEqual(zlib.gunzipSync(once).toString("utf8"), text);
    });

    it("inline is the cloud-config base64-encoded", () => {
        const text = "#cloud-config\nruncmd: [true]\n";
        const choice = value(chooseDelivery(text, GZIP_OFF));
        assert.strictEqual(Buffer.from(value(deliveredUserData(text, choice, url)), "base64").toString("utf8"), text);
    });

    it("gzip is the gzip base64-encoded", () => {
        const text = cloudConfigOfBytes(LIMIT + 1, "compressible");
        const choice = value(chooseDelivery(text, GZIP_ON));
        assert.strictEqual(zlib.gunzipSync(Buffer.from(value(deliveredUserData(text, choice, url)), "base64")).toString("utf8"), text);
    });

    it("object is an #include header and the URL on its own line, nothing of the original", () => {
        const text = cloudConfigOfBytes(40_000, "incompressible");
        const choice = value(chooseDelivery(text, GZIP_ON));
        const pointer = Buffer.from(value(deliveredUserData(text, choice, url)), "base64").toString("utf8");
        assert.strictEqual(pointer, `#include\n${url}\n`);
    });

    it("refuses a URL cloud-init would split or skip", () => {
        assert.match(error(renderIncludePointer(`${url}\nhttp://evil.example/`)), /single http\(s\) URL/);
        assert.match(error(renderIncludePointer(`#${url}`)), /single http\(s\) URL/);
        assert.match(error(renderIncludePointer("file:///etc/shadow")), /single http\(s\) URL/);
    });

    it("points at an http URL too (an S3-compatible store on a private network)", () => {
        assert.strictEqual(value(renderIncludePointer("http://10.0.0.5:9000/b/k?X-Amz-Signature=00")), "#include\nhttp://10.0.0.5:9000/b/k?X-Amz-Signature=00\n");
    });

    it("returns the pointer's error, not a pointer, for a URL cloud-init would split", () => {
        const choice: DeliveryChoice = { method: "object", rawBytes: 5000, gzipBytes: 3000, limitBytes: 1024, reason: "" };
        assert.match(error(deliveredUserData("#cloud-config\n", choice, `${url} trailing`)), /single http\(s\) URL/);
    });

    it("returns an error naming the config key when the pointer itself exceeds the limit", () => {
        const choice: DeliveryChoice = { method: "object", rawBytes: 5000, gzipBytes: 3000, limitBytes: 1024, reason: "" };
        const longUrl = `https://example.com/${"k".repeat(1100)}`;
        assert.match(error(deliveredUserData("#cloud-config\n", choice, longUrl)), /over meshstack:metadataLimitBytes \(1024\)/);
    });
});

describe("bootstrap object key", () => {
    it("sits under the bootstrap prefix, per stack and per node, and names the instance generation and the content", () => {
        const hash = sha256Hex("#cloud-config\n");
        const key = bootstrapObjectKey({ prefix: "bootstrap/", stack: "dev", node: "nats-1", generation: "q7x2ab", contentSha256: hash });
        assert.strictEqual(key, `bootstrap/dev/nats-1/q7x2ab-${hash.slice(0, 16)}.cloud-config`);
    });
});
