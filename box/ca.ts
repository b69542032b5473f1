import * as fs from "fs";
import * as path from "path";
import { BoxTls } from "./material";

/** The box's own CA: MinIO's certificate comes from it, and the VMs get it from their seed disk. */
export function makeBoxCa(tls: BoxTls, dir: string): { caCertFile: string; issue: (ip: string) => { certPem: string; keyPem: string } } {
    fs.mkdirSync(dir, { recursive: true });
    const caKey = tls.outputs("tls:index/privateKey:PrivateKey", { algorithm: "ECDSA", ecdsaCurve: "P256" });
    const ca = tls.outputs("tls:index/selfSignedCert:SelfSignedCert", {
        privateKeyPem: caKey.privateKeyPem, subject: { commonName: "meshstack box CA", organization: "meshstack box" },
        isCaCertificate: true, validityPeriodHours: 48, allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
    });
    const caCertFile = path.join(dir, "box-ca.crt");
    fs.writeFileSync(caCertFile, String(ca.certPem));
    const issue = (ip: string) => {
        const key = tls.outputs("tls:index/privateKey:PrivateKey", { algorithm: "ECDSA", ecdsaCurve: "P256" });
        const csr = tls.outputs("tls:index/certRequest:CertRequest", { privateKeyPem: key.privateKeyPem, subject: { commonName: ip, organization: "meshstack box" }, ipAddresses: [ip] });
        const cert = tls.outputs("tls:index/locallySignedCert:LocallySignedCert", {
            certRequestPem: csr.certRequestPem, caCertPem: ca.certPem, caPrivateKeyPem: caKey.privateKeyPem,
            validityPeriodHours: 48, allowedUses: ["digital_signature", "server_auth"],
        });
        return { certPem: String(cert.certPem), keyPem: String(key.privateKeyPem) };
    };
    return { caCertFile, issue };
}
