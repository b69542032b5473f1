/**
 * Real key material for the box, where the offline plan has stand-ins:
 * @pulumi/random values from node:crypto and @pulumi/tls keys and
 * certificates from openssl (nats-server refuses the plan's stand-in PEMs
 * with `x509: malformed certificate`). Each answer has the output shape of
 * the real provider, for the inputs the real provider takes.
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { CertProfile, CertUse, opensslExtensions } from "../cloudinit/natsCerts";

const LOWER = "abcdefghijklmnopqrstuvwxyz";
const UPPER = LOWER.toUpperCase();
const NUMERIC = "0123456789";
const SPECIAL = "!@#$%&*()-_=+[]{}<>:?";

/** @pulumi/random's RandomString/RandomPassword `result` for these inputs. */
export function randomString(inputs: Record<string, any>): string {
    const length = Number(inputs.length);
    const on = (key: string) => inputs[key] !== false;
    const alphabet = [on("lower") ? LOWER : "", on("upper") ? UPPER : "", on("numeric") && on("number") ? NUMERIC : "", on("special") ? (inputs.overrideSpecial ?? SPECIAL) : ""].join("");
    if (!Number.isInteger(length) || length < 1 || !alphabet) throw new Error(`random string: length ${inputs.length} with an empty alphabet is not possible`);
    return Array.from({ length }, () => alphabet[crypto.randomInt(alphabet.length)]).join("");
}

export function randomOutputs(type: string, inputs: Record<string, any>): Record<string, unknown> {
    switch (type) {
        case "random:index/randomString:RandomString":
        case "random:index/randomPassword:RandomPassword":
            return { result: randomString(inputs) };
        case "random:index/randomId:RandomId": {
            const bytes = crypto.randomBytes(Number(inputs.byteLength));
            return { hex: bytes.toString("hex"), b64Url: bytes.toString("base64url"), b64Std: bytes.toString("base64"), dec: BigInt(`0x${bytes.toString("hex")}`).toString() };
        }
        case "random:index/randomBytes:RandomBytes": {
            const bytes = crypto.randomBytes(Number(inputs.length));
            return { base64: bytes.toString("base64"), hex: bytes.toString("hex") };
        }
        default:
            throw new Error(`the box has no real ${type}`);
    }
}

interface Subject {
    commonName?: string;
    organization?: string;
}

function subjectArg(subject: Subject | undefined): string {
    const escape = (v: string) => v.replace(/[/\\]/g, (c) => `\\${c}`);
    const parts = [subject?.organization ? `/O=${escape(subject.organization)}` : "", subject?.commonName ? `/CN=${escape(subject.commonName)}` : ""].join("");
    return parts || "/";
}

/**
 * Mints with openssl in a private temp directory. CSRs made here are
 * remembered with their requested names, and CSRs made on a node carry
 * theirs, so a certificate gets the SANs its request asked for, as
 * @pulumi/tls does.
 */
export class BoxTls {
    private readonly requests = new Map<string, { dnsNames: string[]; ipAddresses: string[]; subject?: Subject }>();
    private serial = 1;

    private withDir<T>(work: (file: (name: string) => string) => T): T {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-box-tls-"));
        try {
            return work((name) => path.join(dir, name));
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    }

    private openssl(args: string[]): string {
        return execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    }

    private profile(subject: Subject | undefined, uses: CertUse[], isCa: boolean, validityHours: number, names = { dnsNames: [] as string[], ipAddresses: [] as string[] }): CertProfile {
        return { commonName: subject?.commonName ?? "", organization: subject?.organization ?? "", dnsNames: names.dnsNames, ipAddresses: names.ipAddresses, uses, isCa, validityHours };
    }

    outputs(type: string, inputs: Record<string, any>): Record<string, unknown> {
        switch (type) {
            case "tls:index/privateKey:PrivateKey": {
                if (inputs.algorithm !== "ECDSA" || (inputs.ecdsaCurve ?? "P224") !== "P256") throw new Error(`the box mints ECDSA P256 keys only; got ${inputs.algorithm} ${inputs.ecdsaCurve}`);
                const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
                return {
                    privateKeyPem: privateKey.export({ format: "pem", type: "sec1" }).toString(),
                    privateKeyPemPkcs8: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
                    publicKeyPem: publicKey.export({ format: "pem", type: "spki" }).toString(),
                };
            }
            case "tls:index/certRequest:CertRequest":
                return this.withDir((file) => {
                    fs.writeFileSync(file("key"), inputs.privateKeyPem, { mode: 0o600 });
                    const pem = this.openssl(["req", "-new", "-key", file("key"), "-subj", subjectArg(inputs.subject)]);
                    this.requests.set(pem, { dnsNames: inputs.dnsNames ?? [], ipAddresses: inputs.ipAddresses ?? [], subject: inputs.subject });
                    return { certRequestPem: pem };
                });
            case "tls:index/selfSignedCert:SelfSignedCert":
                return this.withDir((file) => {
                    fs.writeFileSync(file("key"), inputs.privateKeyPem, { mode: 0o600 });
                    const profile = this.profile(inputs.subject, inputs.allowedUses ?? [], !!inputs.isCaCertificate, Number(inputs.validityPeriodHours),
                        { dnsNames: inputs.dnsNames ?? [], ipAddresses: inputs.ipAddresses ?? [] });
                    fs.writeFileSync(file("cnf"), `[req]\ndistinguished_name = dn\n[dn]\n[ext]\n${opensslExtensions(profile)}`);
                    const certPem = this.openssl(["req", "-x509", "-new", "-key", file("key"), "-subj", subjectArg(inputs.subject), "-days", String(Math.ceil(profile.validityHours / 24)),
                        "-set_serial", String(this.serial++), "-config", file("cnf"), "-extensions", "ext"]);
                    return { certPem };
                });
            case "tls:index/locallySignedCert:LocallySignedCert":
                return this.withDir((file) => {
                    // A request this run made carries its names here; one a node made
                    // carries them inside, and openssl copies them (as @pulumi/tls does).
                    const request = this.requests.get(inputs.certRequestPem);
                    fs.writeFileSync(file("csr"), inputs.certRequestPem);
                    fs.writeFileSync(file("ca.crt"), inputs.caCertPem);
                    fs.writeFileSync(file("ca.key"), inputs.caPrivateKeyPem, { mode: 0o600 });
                    const profile = this.profile(request?.subject, inputs.allowedUses ?? [], !!inputs.isCaCertificate, Number(inputs.validityPeriodHours), request);
                    fs.writeFileSync(file("ext"), opensslExtensions(profile));
                    const certPem = this.openssl(["x509", "-req", "-in", file("csr"), "-CA", file("ca.crt"), "-CAkey", file("ca.key"), "-set_serial", String(this.serial++),
                        "-days", String(Math.ceil(profile.validityHours / 24)), "-extfile", file("ext"), ...(request ? [] : ["-copy_extensions", "copy"])]);
                    return { certPem };
                });
            default:
                throw new Error(`the box has no real ${type}`);
        }
    }
}
