/**
 * Reads a PKCS#10 certificate request far enough to decide whether the
 * deploy may sign it. @pulumi/tls signs a request with the subject and the
 * names it carries, so a request is the requester's claim: whoever holds a
 * node's publish URL could ask the route CA for any name. The deploy knows
 * what each node may be called (its certificate profile), and signs only
 * a request that asks for exactly that, signed by the key it carries.
 *
 * Node's crypto parses certificates but not requests, so this is a small
 * DER reader for the parts that matter: the subject, the subjectAltName of
 * the extension request, the public key and the signature.
 */
import * as crypto from "crypto";

/** What a request may ask for: the subject and names of its certificate profile. */
export interface RequestedIdentity {
    commonName: string;
    organization: string;
    dnsNames: string[];
    ipAddresses: string[];
}

export interface ParsedCertificateRequest extends RequestedIdentity {
    /** Subject attributes other than CN and O, and SAN entries other than DNS and IP, as "OID=value" or "type [n]". */
    otherNames: string[];
    /** The request's signature verifies with the public key it carries. */
    signatureValid: boolean;
}

interface Der {
    tag: number;
    /** Content bytes. */
    value: Buffer;
    /** The whole element, header included. */
    raw: Buffer;
}

function readDer(buf: Buffer, offset: number): Der & { end: number } {
    if (offset + 2 > buf.length) throw new Error("truncated DER element");
    const tag = buf[offset];
    let length = buf[offset + 1];
    let header = 2;
    if (length & 0x80) {
        const count = length & 0x7f;
        if (count === 0 || count > 4 || offset + 2 + count > buf.length) throw new Error("unsupported DER length");
        length = 0;
        for (let i = 0; i < count; i++) length = length * 256 + buf[offset + 2 + i];
        header += count;
    }
    const end = offset + header + length;
    if (end > buf.length) throw new Error("DER element runs past its container");
    return { tag, value: buf.subarray(offset + header, end), raw: buf.subarray(offset, end), end };
}

function children(element: Der): Der[] {
    const out: Der[] = [];
    for (let offset = 0; offset < element.value.length; ) {
        const child = readDer(element.value, offset);
        out.push(child);
        offset = child.end;
    }
    return out;
}

function oid(value: Buffer): string {
    const parts = [Math.floor(value[0] / 40), value[0] % 40];
    let n = 0;
    for (let i = 1; i < value.length; i++) {
        n = n * 128 + (value[i] & 0x7f);
        if (!(value[i] & 0x80)) {
            parts.push(n);
            n = 0;
        }
    }
    return parts.join(".");
}

const OID = {
    commonName: "2.5.4.3",
    organization: "2.5.4.10",
    extensionRequest: "1.2.840.113549.1.9.14",
    subjectAltName: "2.5.29.17",
    ecdsaWithSha256: "1.2.840.10045.4.3.2",
    ecdsaWithSha384: "1.2.840.10045.4.3.3",
    sha256WithRsa: "1.2.840.113549.1.1.11",
} as const;

const SIGNATURE_HASH: Record<string, string> = {
    [OID.ecdsaWithSha256]: "sha256",
    [OID.ecdsaWithSha384]: "sha384",
    [OID.sha256WithRsa]: "sha256",
};

const GENERAL_NAME_TAG = { dnsName: 0x82, ipAddress: 0x87 } as const;

/** One spelling per address (RFC 5952 for IPv6, as URL hosts are serialized), so a profile's "fd00::1" equals the request's bytes. */
function canonicalIp(text: string): string {
    if (!text.includes(":")) return text;
    try {
        return new URL(`http://[${text}]/`).hostname.slice(1, -1);
    } catch {
        return text;
    }
}

function ipText(bytes: Buffer): string {
    if (bytes.length === 4) return [...bytes].join(".");
    if (bytes.length === 16) return canonicalIp(Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2).toString(16)).join(":"));
    return `invalid IP (${bytes.length} bytes)`;
}

/** The request in a PEM block, or a reason it cannot be read. */
export function parseCertificateRequest(pem: string): { ok: true; value: ParsedCertificateRequest } | { ok: false; error: string } {
    const match = /-----BEGIN CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE REQUEST-----/.exec(pem);
    if (!match) return { ok: false, error: "is not a PEM certificate request" };
    try {
        const der = Buffer.from(match[1].replace(/\s+/g, ""), "base64");
        const request = readDer(der, 0);
        const [info, algorithm, signature] = children(request);
        if (!info || !algorithm || !signature || signature.tag !== 0x03) throw new Error("not a CertificationRequest");
        const [, subject, publicKeyInfo, attributes] = children(info);
        const parsed: ParsedCertificateRequest = { commonName: "", organization: "", dnsNames: [], ipAddresses: [], otherNames: [], signatureValid: false };
        for (const rdn of children(subject)) {
            for (const attribute of children(rdn)) {
                const [type, value] = children(attribute);
                const name = oid(type.value);
                const text = value.value.toString("utf8");
                if (name === OID.commonName && !parsed.commonName) parsed.commonName = text;
                else if (name === OID.organization && !parsed.organization) parsed.organization = text;
                else parsed.otherNames.push(`${name}=${text}`);
            }
        }
        for (const attribute of attributes && attributes.tag === 0xa0 ? children(attributes) : []) {
            const [type, values] = children(attribute);
            if (oid(type.value) !== OID.extensionRequest) continue;
            for (const extensions of children(values)) {
                for (const extension of children(extensions)) {
                    const parts = children(extension);
                    if (oid(parts[0].value) !== OID.subjectAltName) continue;
                    const names = readDer(parts[parts.length - 1].value, 0);
                    for (const general of children(names)) {
                        if (general.tag === GENERAL_NAME_TAG.dnsName) parsed.dnsNames.push(general.value.toString("ascii"));
                        else if (general.tag === GENERAL_NAME_TAG.ipAddress) parsed.ipAddresses.push(ipText(general.value));
                        else parsed.otherNames.push(`subjectAltName entry of type [${general.tag & 0x1f}]`);
                    }
                }
            }
        }
        const hash = SIGNATURE_HASH[oid(children(algorithm)[0].value)];
        if (hash) {
            const key = crypto.createPublicKey({ key: publicKeyInfo.raw, format: "der", type: "spki" });
            // The BIT STRING's first byte counts its unused bits, always 0 for a signature.
            parsed.signatureValid = crypto.verify(hash, info.raw, key, signature.value.subarray(1));
        }
        return { ok: true, value: parsed };
    } catch (err) {
        return { ok: false, error: `cannot be read as a certificate request (${(err as Error).message})` };
    }
}

function sameSet(a: string[], b: string[]): boolean {
    const sortedB = [...b].sort();
    return a.length === b.length && [...a].sort().every((v, i) => v === sortedB[i]);
}

/** Why the deploy must not sign this request for `expected`; empty when it may. */
export function certificateRequestProblems(pem: string, expected: RequestedIdentity): string[] {
    const parsed = parseCertificateRequest(pem);
    if (!parsed.ok) return [parsed.error];
    const request = parsed.value;
    const problems: string[] = [];
    if (!request.signatureValid) problems.push("is not signed by the key it carries (or with an algorithm other than ECDSA/RSA with SHA-256/384)");
    if (request.commonName !== expected.commonName) problems.push(`asks for common name ${JSON.stringify(request.commonName)}, not ${JSON.stringify(expected.commonName)}`);
    if (request.organization !== expected.organization) problems.push(`asks for organization ${JSON.stringify(request.organization)}, not ${JSON.stringify(expected.organization)}`);
    if (!sameSet(request.dnsNames, expected.dnsNames)) problems.push(`asks for DNS names ${JSON.stringify(request.dnsNames)}, not ${JSON.stringify(expected.dnsNames)}`);
    if (!sameSet(request.ipAddresses, expected.ipAddresses.map(canonicalIp))) problems.push(`asks for IP addresses ${JSON.stringify(request.ipAddresses)}, not ${JSON.stringify(expected.ipAddresses)}`);
    if (request.otherNames.length > 0) problems.push(`asks for names no profile has: ${request.otherNames.join(", ")}`);
    return problems;
}

/** Only what a request carries, from a profile that holds more (key usages and validity are the signer's). */
export function requestedIdentity(profile: RequestedIdentity): RequestedIdentity {
    return { commonName: profile.commonName, organization: profile.organization, dnsNames: [...profile.dnsNames], ipAddresses: [...profile.ipAddresses] };
}
