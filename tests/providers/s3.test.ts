import * as assert from "assert";
import * as crypto from "crypto";
import * as http from "http";
import { AddressInfo } from "net";
import { S3_MAX_KEY_BYTES } from "../../lib/limits";
import {
    encodeObjectPath, networkFailureReason, objectKeyProblem, presignObjectUrl, requiredStringProblems, s3ObjectAccessProblems, signedObjectRequest,
} from "../../providers/s3";
import { pathStyleObjectPath, presignedQuery, splitPresignedUrl } from "../support/sigv4";

const CREDENTIALS = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };
const SIGNED_AT = new Date("2026-03-04T05:06:07Z");

describe("S3 access (pure, in process)", () => {
    describe("the independent SigV4 oracle", () => {
        it("reproduces AWS's published presigned GET example", () => {
            // docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
            const query = presignedQuery({
                method: "GET", host: "examplebucket.s3.amazonaws.com", canonicalPath: "/test.txt", region: "us-east-1",
                accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                signedAt: new Date("2013-05-24T00:00:00Z"), expiresInSeconds: 86400,
            });
            assert.strictEqual(query["X-Amz-Signature"], "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
        });
    });

    describe("presignObjectUrl", () => {
        const cases: { name: string; endpoint: string; host: string; key: string; method: "GET" | "PUT" }[] = [
            { name: "a plain key on an https endpoint", endpoint: "https://us-east-1.linodeobjects.com", host: "us-east-1.linodeobjects.com", key: "wg/dev/pubkey", method: "GET" },
            { name: "a PUT to an endpoint with a port", endpoint: "http://127.0.0.1:9000", host: "127.0.0.1:9000", key: "k", method: "PUT" },
            { name: "spaces, plus and RFC 3986 reserved characters", endpoint: "https://s3.example.net", host: "s3.example.net", key: "with space/and+plus/!'()*&$,;=@:.txt", method: "GET" },
            { name: "non-ASCII and a literal percent", endpoint: "https://s3.example.net", host: "s3.example.net", key: "unicode/ключ-😀-é/percent%20literal", method: "PUT" },
            { name: "the characters RFC 3986 leaves unescaped", endpoint: "https://s3.example.net", host: "s3.example.net", key: "tilde~and-dash_under.score", method: "GET" },
        ];
        for (const c of cases) {
            it(`signs ${c.name} as SigV4 prescribes`, async () => {
                const url = await presignObjectUrl({ endpoint: c.endpoint, region: "eu-central-1", bucket: "rendezvous", key: c.key }, CREDENTIALS, c.method, 900, SIGNED_AT);
                const { base, query } = splitPresignedUrl(url);
                assert.strictEqual(base, `${c.endpoint}${pathStyleObjectPath("rendezvous", c.key)}`);
                assert.deepStrictEqual(query, presignedQuery({
                    method: c.method, host: c.host, canonicalPath: pathStyleObjectPath("rendezvous", c.key), region: "eu-central-1", ...CREDENTIALS,
                    signedAt: SIGNED_AT, expiresInSeconds: 900,
                }));
            });
        }

        it("is deterministic for the same inputs and signing date (a stored URL reproduces)", async () => {
            const sign = () => presignObjectUrl({ endpoint: "https://s3.example.net", region: "r", bucket: "b", key: "k" }, CREDENTIALS, "GET", 60, SIGNED_AT);
            assert.strictEqual(await sign(), await sign());
        });

        it("refuses a key that HTTP clients would rewrite, naming it", async () => {
            await assert.rejects(presignObjectUrl({ endpoint: "https://s3.example.net", region: "r", bucket: "b", key: "a/../b" }, CREDENTIALS, "GET", 60, SIGNED_AT), /"\.\." path segment.*"a\/\.\.\/b"/);
        });
    });

    describe("encodeObjectPath", () => {
        it("percent-encodes each segment with uppercase hex and keeps the slashes", () => {
            assert.strictEqual(encodeObjectPath("b", "a b/c+d/é*"), "/b/a%20b/c%2Bd/%C3%A9%2A");
        });

        it("keeps empty segments (a key may hold //)", () => {
            assert.strictEqual(encodeObjectPath("b", "a//c/"), "/b/a//c/");
        });
    });

    describe("objectKeyProblem", () => {
        const refused: [string, string, RegExp][] = [
            ["an empty key", "", /empty/],
            ["a . segment", "a/./b", /"\." or "\.\." path segment/],
            ["a .. segment at the start", "../b", /"\." or "\.\." path segment/],
            ["a .. key", "..", /"\." or "\.\." path segment/],
            ["a control character", "a\u0001b", /control character/],
            ["a DEL", "a\u007fb", /control character/],
            ["a newline", "a\nb", /control character/],
            ["one byte over the limit", "k".repeat(S3_MAX_KEY_BYTES + 1), new RegExp(`longer than ${S3_MAX_KEY_BYTES} bytes`)],
            ["a key over the limit in bytes though not in characters", "é".repeat(S3_MAX_KEY_BYTES / 2 + 1), /longer than/],
        ];
        for (const [name, key, reason] of refused) {
            it(`refuses ${name}`, () => assert.match(objectKeyProblem(key) ?? "(accepted)", reason));
        }

        const accepted: [string, string][] = [
            ["a key exactly at the byte limit", "é".repeat(S3_MAX_KEY_BYTES / 2)],
            ["dots inside a segment", "a/..b/c.d/.e"],
            ["a trailing slash", "dir/"],
            ["spaces and unicode", "with space/ключ"],
        ];
        for (const [name, key] of accepted) {
            it(`accepts ${name}`, () => assert.strictEqual(objectKeyProblem(key), undefined));
        }
    });

    describe("check() rules", () => {
        const good = { endpoint: "https://us-east-1.linodeobjects.com", region: "us-east-1", bucket: "b", key: "k", ...CREDENTIALS };

        it("accepts a complete object access, with or without a trailing slash on the endpoint", () => {
            assert.deepStrictEqual(s3ObjectAccessProblems(good), []);
            assert.deepStrictEqual(s3ObjectAccessProblems({ ...good, endpoint: "http://127.0.0.1:9000/" }), []);
        });

        it("names every missing or empty field at once", () => {
            const problems = s3ObjectAccessProblems({ endpoint: good.endpoint, region: "", key: "k", accessKeyId: "a" });
            assert.deepStrictEqual(problems, [
                { property: "region", reason: "is required" },
                { property: "bucket", reason: "is required" },
                { property: "secretAccessKey", reason: "is required" },
            ]);
        });

        for (const endpoint of ["us-east-1.linodeobjects.com", "https://host/path", "ftp://host", "xhttps://host", "https://", "https://ho st", undefined]) {
            it(`refuses the endpoint ${JSON.stringify(endpoint)}, saying what is allowed`, () => {
                const problems = s3ObjectAccessProblems({ ...good, endpoint });
                assert.deepStrictEqual(problems, [{ property: "endpoint", reason: `got ${JSON.stringify(endpoint)}; allowed: an http(s) URL with no path` }]);
            });
        }

        it("refuses a missing key and a bad key with the key's own reason", () => {
            assert.deepStrictEqual(s3ObjectAccessProblems({ ...good, key: undefined }), [{ property: "key", reason: "the object key is missing" }]);
            assert.deepStrictEqual(s3ObjectAccessProblems({ ...good, key: "a/./b" }), [{ property: "key", reason: objectKeyProblem("a/./b") }]);
        });

        it("treats a non-string as missing", () => {
            assert.deepStrictEqual(requiredStringProblems({ a: 1, b: "x" } as Record<string, unknown>, ["a", "b"]), [{ property: "a", reason: "is required" }]);
        });
    });

    describe("networkFailureReason", () => {
        it("says a timeout in milliseconds", () => {
            assert.strictEqual(networkFailureReason(Object.assign(new Error("x"), { name: "TimeoutError" }), 1500), "no answer within 1500 ms");
            assert.strictEqual(networkFailureReason(Object.assign(new Error("x"), { name: "AbortError" }), 20), "no answer within 20 ms");
        });

        it("takes the cause fetch hides, with its code when the message lacks it", () => {
            const failed = (cause: object) => Object.assign(new TypeError("fetch failed"), { cause });
            assert.strictEqual(networkFailureReason(failed({ code: "ENOTFOUND", message: "getaddrinfo failed for s3.invalid" }), 1), "ENOTFOUND: getaddrinfo failed for s3.invalid");
            assert.strictEqual(networkFailureReason(failed({ code: "ECONNREFUSED", message: "connect ECONNREFUSED 127.0.0.1:9" }), 1), "connect ECONNREFUSED 127.0.0.1:9");
            assert.strictEqual(networkFailureReason(failed({ message: "self-signed certificate" }), 1), "self-signed certificate");
        });

        it("falls back to the error's own message, or the value itself, even when nothing was thrown with it", () => {
            assert.strictEqual(networkFailureReason(new Error("socket hang up"), 1), "socket hang up");
            assert.strictEqual(networkFailureReason("plain text", 1), "plain text");
            assert.strictEqual(networkFailureReason(undefined, 1), "undefined");
        });
    });

    describe("signedObjectRequest against a loopback HTTP server that verifies SigV4", () => {
        interface Received {
            method: string;
            path: string;
            headers: http.IncomingHttpHeaders;
            body: Buffer;
        }
        let server: http.Server;
        let endpoint: string;
        let received: Received[];
        let reply: { status: number; body: string };

        before(async () => {
            server = http.createServer((req, res) => {
                const chunks: Buffer[] = [];
                req.on("data", (c: Buffer) => chunks.push(c));
                req.on("end", () => {
                    received.push({ method: req.method!, path: req.url!, headers: req.headers, body: Buffer.concat(chunks) });
                    res.writeHead(reply.status, { "content-type": "application/xml" }).end(reply.body);
                });
            });
            await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
            endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        });
        after(() => new Promise((resolve) => server.close(resolve)));
        beforeEach(() => {
            received = [];
            reply = { status: 200, body: "" };
        });

        /** The Authorization header's signature recomputed as S3 does it from the request it got. */
        function expectedAuthorization(request: Received): string {
            const auth = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(String(request.headers.authorization));
            assert.ok(auth, `malformed Authorization: ${request.headers.authorization}`);
            const [, accessKeyId, day, region, signedHeaders] = auth;
            const names = signedHeaders.split(";");
            assert.ok(names.includes("host") && names.includes("x-amz-content-sha256") && names.includes("x-amz-date"), signedHeaders);
            const canonicalHeaders = names.map((n) => `${n}:${String(request.headers[n]).trim()}\n`).join("");
            const canonicalRequest = [request.method, request.path, "", canonicalHeaders, signedHeaders, String(request.headers["x-amz-content-sha256"])].join("\n");
            const date = String(request.headers["x-amz-date"]);
            const scope = `${day}/${region}/s3/aws4_request`;
            const stringToSign = ["AWS4-HMAC-SHA256", date, scope, crypto.createHash("sha256").update(canonicalRequest).digest("hex")].join("\n");
            const hmac = (key: crypto.BinaryLike, data: string) => crypto.createHmac("sha256", key).update(data).digest();
            const key = [region, "s3", "aws4_request"].reduce((k, part) => hmac(k, part), hmac(`AWS4${CREDENTIALS.secretAccessKey}`, day));
            return `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${crypto.createHmac("sha256", key).update(stringToSign).digest("hex")}`;
        }

        it("PUTs the body to the encoded path, signed with the key pair and the body's sha256", async () => {
            const body = Buffer.from("public key bytes\n");
            const response = await signedObjectRequest({ endpoint, region: "us-east-1", bucket: "b", key: "wg/with space/pubkey" }, CREDENTIALS, "PUT", body);
            assert.strictEqual(response.status, 200);
            const [request] = received;
            assert.deepStrictEqual([request.method, request.path, request.body.toString()], ["PUT", `/b/wg/with%20space/pubkey`, body.toString()]);
            assert.strictEqual(request.headers["x-amz-content-sha256"], crypto.createHash("sha256").update(body).digest("hex"));
            assert.strictEqual(request.headers.authorization, expectedAuthorization(request));
            const signedAt = String(request.headers["x-amz-date"]).replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, "$1-$2-$3T$4:$5:$6Z");
            assert.ok(Math.abs(Date.parse(signedAt) - Date.now()) < 60_000, `signed at ${request.headers["x-amz-date"]}, not now`);
        });

        it("GETs with the empty payload's hash and returns the body", async () => {
            reply = { status: 200, body: "the key" };
            const response = await signedObjectRequest({ endpoint, region: "eu-central-1", bucket: "b", key: "k" }, CREDENTIALS, "GET");
            assert.deepStrictEqual([response.status, response.body.toString(), response.errorCode], [200, "the key", undefined]);
            const [request] = received;
            assert.strictEqual(request.headers["x-amz-content-sha256"], crypto.createHash("sha256").update("").digest("hex"));
            assert.strictEqual(request.headers.authorization, expectedAuthorization(request));
        });

        it("reports the S3 error code of a refused request", async () => {
            reply = { status: 403, body: "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>" };
            const response = await signedObjectRequest({ endpoint, region: "r", bucket: "b", key: "k" }, CREDENTIALS, "GET");
            assert.deepStrictEqual([response.status, response.errorCode], [403, "SignatureDoesNotMatch"]);
        });

        it("reports no error code when a refusal has no S3 error body (a proxy's page, a HEAD)", async () => {
            reply = { status: 502, body: "<html>Bad Gateway</html>" };
            const response = await signedObjectRequest({ endpoint, region: "r", bucket: "b", key: "k" }, CREDENTIALS, "GET");
            assert.deepStrictEqual([response.status, response.errorCode, response.body.toString()], [502, undefined, "<html>Bad Gateway</html>"]);
        });

        it("names the operation, object and endpoint when no HTTP answer comes", async () => {
            const closed = await new Promise<number>((resolve) => {
                const probe = http.createServer().listen(0, "127.0.0.1", () => {
                    const port = (probe.address() as AddressInfo).port;
                    probe.close(() => resolve(port));
                });
            });
            await assert.rejects(
                signedObjectRequest({ endpoint: `http://127.0.0.1:${closed}`, region: "r", bucket: "b", key: "k" }, CREDENTIALS, "DELETE"),
                (err: Error & { reason?: string }) => {
                    assert.strictEqual(err.name, "S3NetworkError");
                    assert.strictEqual(err.message, `DELETE s3://b/k at http://127.0.0.1:${closed} failed: ${err.reason}`);
                    assert.match(err.reason!, /ECONNREFUSED/);
                    return true;
                },
            );
        });
    });
});
