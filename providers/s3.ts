/**
 * Minimal S3 access for dynamic providers: path-style object URLs, SigV4
 * presigning and signed requests, done by @smithy/signature-v4 (the AWS SDK's
 * own signer) so the canonicalization rules a hand-written signer gets wrong (RFC 3986 encoding,
 * uppercase hex, slashes kept, empty path = "/") are the SDK's, not ours.
 *
 * This module is captured by value into serialized dynamic providers, so it
 * keeps no module-level state and only requires packages from node_modules.
 */
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { S3_MAX_KEY_BYTES } from "../lib/limits";

export interface S3Location {
    /** Endpoint URL with scheme and optional port, no path: https://us-east-1.linodeobjects.com */
    endpoint: string;
    /** SigV4 signing region. */
    region: string;
    bucket: string;
    key: string;
}

export interface S3Credentials {
    accessKeyId: string;
    secretAccessKey: string;
}

export type S3Method = "GET" | "PUT" | "DELETE" | "HEAD";

/** An object and the key pair that reaches it: what every bucket-backed provider takes. */
export type S3ObjectAccess = S3Location & S3Credentials;

/** A dynamic provider's check() failure. */
export interface InputProblem {
    property: string;
    reason: string;
}

export function requiredStringProblems<T extends string>(inputs: Partial<Record<T, unknown>>, properties: readonly T[]): InputProblem[] {
    return properties
        .filter((property) => typeof inputs[property] !== "string" || inputs[property] === "")
        .map((property) => ({ property, reason: "is required" }));
}

/** check() failures for an object location and its key pair. */
export function s3ObjectAccessProblems(inputs: Partial<Record<keyof S3ObjectAccess, unknown>>): InputProblem[] {
    const problems = requiredStringProblems(inputs, ["region", "bucket", "accessKeyId", "secretAccessKey"] as const);
    if (typeof inputs.endpoint !== "string" || !/^https?:\/\/[^/\s]+\/?$/.test(inputs.endpoint)) {
        problems.push({ property: "endpoint", reason: `got ${JSON.stringify(inputs.endpoint)}; allowed: an http(s) URL with no path` });
    }
    const keyProblem = typeof inputs.key === "string" ? objectKeyProblem(inputs.key) : "the object key is missing";
    if (keyProblem) problems.push({ property: "key", reason: keyProblem });
    return problems;
}

const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";

/**
 * Why a key cannot be addressed, or undefined. HTTP clients (curl, fetch)
 * resolve "." and ".." path segments before sending, so such keys would be
 * signed for one path and requested at another.
 */
export function objectKeyProblem(key: string): string | undefined {
    if (key.length === 0) return "the object key is empty";
    if (Buffer.byteLength(key, "utf8") > S3_MAX_KEY_BYTES) return `the object key is longer than ${S3_MAX_KEY_BYTES} bytes`;
    if (key.split("/").some((segment) => segment === "." || segment === "..")) {
        return 'the object key has a "." or ".." path segment, which HTTP clients rewrite';
    }
    if (/[\u0000-\u001f\u007f]/.test(key)) return "the object key has a control character";
    return undefined;
}

/** RFC 3986 percent-encoding with uppercase hex; "/" is kept between segments. */
export function encodeObjectPath(bucket: string, key: string): string {
    const encode = (segment: string) =>
        encodeURIComponent(segment).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
    return "/" + [bucket, ...key.split("/")].map(encode).join("/");
}

function buildRequest(location: S3Location, method: S3Method, payloadHash: string, body?: Uint8Array): HttpRequest {
    const problem = objectKeyProblem(location.key);
    if (problem) throw new Error(`${problem}: ${JSON.stringify(location.key)}`);
    const url = new URL(location.endpoint);
    return new HttpRequest({
        method,
        protocol: url.protocol,
        hostname: url.hostname,
        port: url.port ? Number(url.port) : undefined,
        path: encodeObjectPath(location.bucket, location.key),
        headers: { host: url.host, "x-amz-content-sha256": payloadHash },
        body,
    });
}

function signer(location: S3Location, credentials: S3Credentials): SignatureV4 {
    // uriEscapePath=false: S3 signs the path as sent, already encoded once above.
    return new SignatureV4({ credentials, region: location.region, service: "s3", sha256: Sha256, uriEscapePath: false });
}

function toUrl(request: { protocol: string; hostname: string; port?: number; path: string; query?: Record<string, unknown> }): string {
    const port = request.port ? `:${request.port}` : "";
    const query = Object.entries(request.query ?? {})
        .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
        .join("&");
    return `${request.protocol}//${request.hostname}${port}${request.path}${query ? `?${query}` : ""}`;
}

/** A presigned URL for one object; deterministic for the same inputs and signing date. */
export async function presignObjectUrl(
    location: S3Location,
    credentials: S3Credentials,
    method: S3Method,
    expiresInSeconds: number,
    signingDate: Date,
): Promise<string> {
    const request = buildRequest(location, method, UNSIGNED_PAYLOAD);
    const signed = await signer(location, credentials).presign(request, {
        expiresIn: expiresInSeconds,
        signingDate,
        // The header only carries UNSIGNED-PAYLOAD into the canonical request;
        // the URL's user (curl on a node) never sends it.
        unhoistableHeaders: new Set(["x-amz-content-sha256"]),
        unsignableHeaders: new Set(["x-amz-content-sha256"]),
    });
    return toUrl(signed);
}

export interface S3Response {
    status: number;
    body: Buffer;
    /** The S3 error code (`<Code>` of the XML body) when the request failed. */
    errorCode?: string;
}

/**
 * What went wrong below HTTP, in the words an operator acts on: fetch
 * reports only "fetch failed" and keeps the reason (ECONNREFUSED 127.0.0.1:9,
 * ENOTFOUND, a TLS error) in its cause.
 */
export function networkFailureReason(err: unknown, timeoutMs: number): string {
    const error = err as { name?: string; message?: string; cause?: { code?: string; message?: string; cause?: { message?: string } } };
    if (error?.name === "TimeoutError" || error?.name === "AbortError") return `no answer within ${timeoutMs} ms`;
    const cause = error?.cause;
    if (cause?.message) return cause.code && !cause.message.includes(cause.code) ? `${cause.code}: ${cause.message}` : cause.message;
    return String(error?.message ?? err);
}

/** A request that got no HTTP answer: its message names the operation, the endpoint, the bucket and the key. */
export type S3NetworkError = Error & { name: "S3NetworkError"; reason: string };

/** How messages name an object: s3://bucket/key at endpoint. */
export function objectWhere(location: S3Location): string {
    return `s3://${location.bucket}/${location.key} at ${location.endpoint}`;
}

// A plain Error, not a subclass: serialized providers carry classes that lose Error's message.
function s3NetworkError(method: S3Method, location: S3Location, reason: string): S3NetworkError {
    const error = new Error(`${method} ${objectWhere(location)} failed: ${reason}`) as S3NetworkError;
    error.name = "S3NetworkError";
    error.reason = reason;
    return error;
}

/** A request signed with the key pair in the Authorization header. */
export async function signedObjectRequest(
    location: S3Location,
    credentials: S3Credentials,
    method: S3Method,
    body?: Uint8Array,
    timeoutMs = 30_000,
): Promise<S3Response> {
    const hash = new Sha256();
    hash.update(body ?? new Uint8Array());
    const payloadHash = Buffer.from(await hash.digest()).toString("hex");
    const signed = await signer(location, credentials).sign(buildRequest(location, method, payloadHash, body));
    const { host: _host, ...headers } = signed.headers;
    let response: Response;
    let responseBody: Buffer;
    try {
        response = await fetch(toUrl(signed), {
            method,
            headers,
            body: body && body.length ? body : undefined,
            signal: AbortSignal.timeout(timeoutMs),
        });
        responseBody = Buffer.from(await response.arrayBuffer());
    } catch (err) {
        throw s3NetworkError(method, location, networkFailureReason(err, timeoutMs));
    }
    const errorCode = response.ok ? undefined : /<Code>([^<]+)<\/Code>/.exec(responseBody.toString("utf8"))?.[1];
    return { status: response.status, body: responseBody, errorCode };
}
