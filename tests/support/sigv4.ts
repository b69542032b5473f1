/**
 * An independent SigV4 query-string signer, written from the AWS algorithm
 * with node:crypto only, as an oracle for the project's presigned URLs
 * (which @smithy/signature-v4 makes). A URL whose signature matches this
 * one is the URL S3 expects; a zeroed or stale signature does not match.
 * Its own correctness is pinned by AWS's published example
 * (tests/providers/s3.test.ts).
 */
import * as crypto from "crypto";

/** RFC 3986 percent-encoding byte by byte: unreserved characters kept, every other UTF-8 byte as %XX (uppercase). */
export function rfc3986(text: string): string {
    let out = "";
    for (const byte of Buffer.from(text, "utf8")) {
        const c = String.fromCharCode(byte);
        out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
    }
    return out;
}

const hmac = (key: crypto.BinaryLike, data: string) => crypto.createHmac("sha256", key).update(data, "utf8").digest();
const sha256Hex = (data: string) => crypto.createHash("sha256").update(data, "utf8").digest("hex");

export interface PresignRequest {
    method: string;
    /** The Host header value (with port when not the scheme's default). */
    host: string;
    /** The canonical URI: already percent-encoded, as sent. */
    canonicalPath: string;
    region: string;
    accessKeyId: string;
    secretAccessKey: string;
    /** Whole seconds. */
    signedAt: Date;
    expiresInSeconds: number;
}

/** `20130524T000000Z` */
export function amzDate(date: Date): string {
    return date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/** Every query parameter of the presigned URL, X-Amz-Signature included, decoded. */
export function presignedQuery(request: PresignRequest): Record<string, string> {
    const date = amzDate(request.signedAt);
    const day = date.slice(0, 8);
    const scope = `${day}/${request.region}/s3/aws4_request`;
    const query: Record<string, string> = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": `${request.accessKeyId}/${scope}`,
        "X-Amz-Date": date,
        "X-Amz-Expires": String(request.expiresInSeconds),
        "X-Amz-SignedHeaders": "host",
    };
    const canonicalQuery = Object.keys(query)
        .map((k) => [rfc3986(k), rfc3986(query[k])])
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => `${k}=${v}`)
        .join("&");
    const canonicalRequest = [request.method, request.canonicalPath, canonicalQuery, `host:${request.host}\n`, "host", "UNSIGNED-PAYLOAD"].join("\n");
    const stringToSign = ["AWS4-HMAC-SHA256", date, scope, sha256Hex(canonicalRequest)].join("\n");
    const signingKey = ["s3", "aws4_request"].reduce((key, part) => hmac(key, part), hmac(hmac(`AWS4${request.secretAccessKey}`, day), request.region));
    return { ...query, "X-Amz-Signature": crypto.createHmac("sha256", signingKey).update(stringToSign, "utf8").digest("hex") };
}

/** A presigned URL taken apart: everything before `?` as sent, and the decoded query parameters. */
export function splitPresignedUrl(url: string): { base: string; query: Record<string, string> } {
    const cut = url.indexOf("?");
    if (cut < 0) throw new Error(`not a presigned URL (no query): ${url}`);
    const query: Record<string, string> = {};
    for (const pair of url.slice(cut + 1).split("&")) {
        const eq = pair.indexOf("=");
        const key = decodeURIComponent(pair.slice(0, eq));
        if (key in query) throw new Error(`query parameter ${key} appears twice in ${url}`);
        query[key] = decodeURIComponent(pair.slice(eq + 1));
    }
    return { base: url.slice(0, cut), query };
}

/** The path-style object path as S3 canonicalizes it: /bucket/key, each segment RFC 3986-encoded, slashes kept. */
export function pathStyleObjectPath(bucket: string, key: string): string {
    return "/" + [bucket, ...key.split("/")].map(rfc3986).join("/");
}
