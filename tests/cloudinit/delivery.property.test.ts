import { sha256Hex } from "../../lib/digest";
import * as assert from "assert";
import fc from "fast-check";
import * as zlib from "zlib";
import {
    bootstrapObjectKey, chooseDelivery, deliveredUserData, DeliveryChoice, gzipUserData, INCLUDE_HEADER,
} from "../../cloudinit/delivery";
import { LINODE_METADATA_HARD_LIMIT_BYTES, METADATA_LIMIT_MIN_BYTES, SIGV4_MAX_EXPIRY_SECONDS } from "../../lib/limits";
import { bucketNameBase, RANDOM_SUFFIX_LENGTH } from "../../lib/naming";
import { presignObjectUrl } from "../../providers/s3";

const RUNS = { numRuns: 60 };
const limit = fc.integer({ min: METADATA_LIMIT_MIN_BYTES, max: LINODE_METADATA_HARD_LIMIT_BYTES });
/** Characters of 1 to 4 UTF-8 bytes: limits count bytes, not characters. */
const char = fc.constantFrom("a", "#", "\n", " ", "é", "€", "😀", "z", "0");

/** A cloud-config of exactly `bytes` UTF-8 bytes, made of `seed`'s characters and padded with ASCII. */
function textOfBytes(seed: string[], bytes: number): string {
    let text = "";
    for (const c of seed) {
        if (Buffer.byteLength(text + c, "utf8") > bytes) break;
        text += c;
    }
    return text + "a".repeat(bytes - Buffer.byteLength(text, "utf8"));
}

const decoded = (base64: string) => Buffer.from(base64, "base64");

describe("bootstrap delivery (properties)", () => {
    it("delivers inline at exactly the limit, whatever the text and the gzip setting", () => {
        fc.assert(fc.property(limit, fc.array(char, { maxLength: 300 }), fc.boolean(), (limitBytes, seed, gzipAccepted) => {
            const text = textOfBytes(seed, limitBytes);
            const choice = chooseDelivery(text, { limitBytes, gzipAccepted });
            assert.ok(choice.ok);
            assert.deepStrictEqual([choice.value.method, choice.value.rawBytes], ["inline", limitBytes]);
            assert.strictEqual(choice.value.reason, `${limitBytes} bytes fit the ${limitBytes}-byte limit`);
            const delivered = deliveredUserData(text, choice.value, "https://unused.invalid/");
            assert.ok(delivered.ok);
            assert.deepStrictEqual(decoded(delivered.value), Buffer.from(text, "utf8"));
        }), RUNS);
    });

    it("one byte over the limit gzips exactly when the image accepts gzip and the gzip fits, else goes to the object store", () => {
        const body = fc.oneof(fc.array(char, { maxLength: 300 }), fc.array(fc.string({ minLength: 1, maxLength: 8 }), { maxLength: 2000 }).map((parts) => parts.join("").split("")));
        fc.assert(fc.property(limit, body, fc.boolean(), (limitBytes, seed, gzipAccepted) => {
            const text = textOfBytes(seed, limitBytes + 1);
            const choice = chooseDelivery(text, { limitBytes, gzipAccepted });
            assert.ok(choice.ok);
            const gzipBytes = gzipUserData(text).length;
            const expected = gzipAccepted && gzipBytes <= limitBytes ? "gzip" : "object";
            assert.deepStrictEqual([choice.value.method, choice.value.rawBytes, choice.value.gzipBytes], [expected, limitBytes + 1, gzipBytes]);
            if (expected === "gzip") assert.strictEqual(choice.value.reason, `gzip (${gzipBytes} bytes) fits the ${limitBytes}-byte limit`);
        }), RUNS);
    });

    it("what it delivers gzipped fits the limit and gunzips to the cloud-config", () => {
        fc.assert(fc.property(limit, fc.integer({ min: 1, max: 4 }), (limitBytes, factor) => {
            const text = `#cloud-config\n${"runcmd: [true]\n".repeat(Math.ceil((limitBytes * factor) / 15))}`;
            const choice = chooseDelivery(text, { limitBytes, gzipAccepted: true });
            assert.ok(choice.ok && choice.value.method === "gzip", JSON.stringify(choice));
            const delivered = deliveredUserData(text, choice.value, "");
            assert.ok(delivered.ok);
            assert.ok(decoded(delivered.value).length <= limitBytes);
            assert.strictEqual(zlib.gunzipSync(decoded(delivered.value)).toString("utf8"), text);
        }), RUNS);
    });

    it("gzips at deflate's strongest level, with the OS byte pinned to RFC 1952's unknown (255)", () => {
        fc.assert(fc.property(fc.array(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 50, maxLength: 400 }), (parts) => {
            const text = parts.join("\n");
            const expected = zlib.gzipSync(Buffer.from(text, "utf8"), { level: 9 });
            expected[9] = 255;
            assert.ok(gzipUserData(text).equals(expected));
        }), RUNS);
    });

    const objectChoice = (limitBytes: number): DeliveryChoice => ({ method: "object", rawBytes: limitBytes + 1, gzipBytes: limitBytes, limitBytes, reason: "test" });
    const pointerBytes = (url: string) => Buffer.byteLength(`${INCLUDE_HEADER}\n${url}\n`, "utf8");

    it("delivers an #include pointer of exactly the limit, and refuses one a byte longer naming meshstack:metadataLimitBytes", () => {
        fc.assert(fc.property(limit, (limitBytes) => {
            const urlOfPointer = (bytes: number) => `https://s3.example.net/b/${"k".repeat(bytes - pointerBytes("https://s3.example.net/b/"))}`;
            const fits = deliveredUserData("#cloud-config\n", objectChoice(limitBytes), urlOfPointer(limitBytes));
            assert.ok(fits.ok);
            assert.strictEqual(decoded(fits.value).toString("utf8"), `${INCLUDE_HEADER}\n${urlOfPointer(limitBytes)}\n`);
            const over = deliveredUserData("#cloud-config\n", objectChoice(limitBytes), urlOfPointer(limitBytes + 1));
            assert.ok(!over.ok);
            assert.match(over.error, new RegExp(`${limitBytes + 1} bytes, over meshstack:metadataLimitBytes \\(${limitBytes}\\)`));
        }), RUNS);
    });

    it("the pointer to a real bootstrap object always fits the smallest limit allowed", async () => {
        const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,62}[a-z0-9]$/);
        await fc.assert(fc.asyncProperty(
            fc.record({
                region: fc.stringMatching(/^[a-z0-9-]{2,32}$/),
                project: label, stack: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/), node: label,
                prefix: fc.array(fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,15}$/), { minLength: 1, maxLength: 3 }).map((segments) => `${segments.join("/")}/`),
                generation: fc.stringMatching(new RegExp(`^[a-z0-9]{${RANDOM_SUFFIX_LENGTH}}$`)),
                content: fc.string(),
                expires: fc.integer({ min: 60, max: SIGV4_MAX_EXPIRY_SECONDS }),
            }),
            async (p) => {
                const bucket = `${bucketNameBase({ project: p.project, stack: p.stack }, "rendezvous")}-${p.generation}`;
                const key = bootstrapObjectKey({ prefix: p.prefix, stack: p.stack, node: p.node, generation: p.generation, contentSha256: sha256Hex(p.content) });
                const url = await presignObjectUrl({ endpoint: `https://${p.region}.linodeobjects.com`, region: p.region, bucket, key },
                    { accessKeyId: "A".repeat(20), secretAccessKey: "s".repeat(40) }, "GET", p.expires, new Date("2026-01-01T00:00:00Z"));
                const delivered = deliveredUserData("#cloud-config\n", objectChoice(METADATA_LIMIT_MIN_BYTES), url);
                assert.ok(delivered.ok, delivered.ok ? "" : `${delivered.error}: ${url}`);
            },
        ), RUNS);
    });
});
