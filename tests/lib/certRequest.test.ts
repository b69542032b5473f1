import * as assert from "assert";
import { certificateRequestProblems, parseCertificateRequest, RequestedIdentity, requestedIdentity } from "../../lib/certRequest";
import { natsRouteCertProfile, natsServerCertProfile } from "../../cloudinit/natsCerts";
import { NatsNode } from "../../lib/topology";
import { opensslCertRequest } from "../support/certRequests";

const NODE: NatsNode = { index: 1, hostname: "meshstack-dev-1", dnsName: "nats-1.mesh.example.net", wgAddress: "10.44.0.11" } as NatsNode;
const SERVER = requestedIdentity(natsServerCertProfile(NODE, "meshstack-dev.nats.mesh.example.net"));

/** The request's DER with one byte of its signature flipped. */
function withBrokenSignature(pem: string): string {
    const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64");
    der[der.length - 3] ^= 0x01;
    return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64").replace(/.{64}/g, "$&\n")}\n-----END CERTIFICATE REQUEST-----\n`;
}

describe("certificate requests the deploy may sign (lib/certRequest, against openssl's requests)", () => {
    const serverRequest = opensslCertRequest(SERVER);

    it("reads subject, SANs and a valid signature from the request a node makes for its profile", () => {
        const parsed = parseCertificateRequest(serverRequest);
        assert.ok(parsed.ok);
        assert.deepStrictEqual(parsed.value, { ...SERVER, otherNames: [], signatureValid: true });
    });

    it("accepts the node's own request for its profile, SANs in any order", () => {
        assert.deepStrictEqual(certificateRequestProblems(serverRequest, { ...SERVER, dnsNames: [...SERVER.dnsNames].reverse() }), []);
    });

    it("accepts an RSA request too (the signature algorithm is the requester's choice)", () => {
        const route = requestedIdentity(natsRouteCertProfile(NODE));
        assert.deepStrictEqual(certificateRequestProblems(opensslCertRequest(route, { rsa: true }), route), []);
    });

    it("compares IPv6 addresses by value, not by spelling", () => {
        const v6 = { ...SERVER, ipAddresses: ["fd00:44::b"] };
        assert.deepStrictEqual(certificateRequestProblems(opensslCertRequest(v6), { ...v6, ipAddresses: ["FD00:44:0:0:0:0:0:B"] }), []);
    });

    const mismatches: [string, Partial<RequestedIdentity>, RegExp][] = [
        ["another common name", { commonName: "meshstack-dev-2" }, /asks for common name "meshstack-dev-1", not "meshstack-dev-2"/],
        ["another organization", { organization: "other" }, /asks for organization "meshstack", not "other"/],
        ["a DNS name fewer", { dnsNames: SERVER.dnsNames.slice(1) }, /asks for DNS names/],
        ["a DNS name more", { dnsNames: [...SERVER.dnsNames, "extra.example.net"] }, /asks for DNS names/],
        ["another IP address", { ipAddresses: ["10.44.0.12"] }, /asks for IP addresses \["10.44.0.11"\], not \["10.44.0.12"\]/],
        ["no IP address", { ipAddresses: [] }, /asks for IP addresses/],
    ];
    for (const [what, change, reason] of mismatches) {
        it(`refuses a request when the profile has ${what}`, () => {
            const problems = certificateRequestProblems(serverRequest, { ...SERVER, ...change });
            assert.strictEqual(problems.length, 1, problems.join("; "));
            assert.match(problems[0], reason);
        });
    }

    it("refuses a request whose signature does not verify with the key it carries", () => {
        assert.deepStrictEqual(certificateRequestProblems(withBrokenSignature(serverRequest), SERVER), [
            "is not signed by the key it carries (or with an algorithm other than ECDSA/RSA with SHA-256/384)",
        ]);
    });

    it("refuses subject fields and SAN types no profile has (an OU, a URI, an e-mail address)", () => {
        const config = [
            "[req]", "prompt = no", "distinguished_name = dn", "req_extensions = ext",
            "[dn]", "O = meshstack", "OU = ops", `CN = ${SERVER.commonName}`,
            "[ext]", `subjectAltName = ${SERVER.dnsNames.map((d) => `DNS:${d}`).join(", ")}, IP:${SERVER.ipAddresses[0]}, URI:spiffe://mesh/x, email:a@example.net`, "",
        ].join("\n");
        const problems = certificateRequestProblems(opensslCertRequest(SERVER, { config }), SERVER);
        assert.deepStrictEqual(problems, ["asks for names no profile has: 2.5.4.11=ops, subjectAltName entry of type [6], subjectAltName entry of type [1]"]);
    });

    for (const [what, pem] of [["an empty string", ""], ["a certificate", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"], ["a truncated request", serverRequest.slice(0, 120) + "\n-----END CERTIFICATE REQUEST-----\n"]]) {
        it(`refuses ${what} with a reason, never a throw`, () => {
            const problems = certificateRequestProblems(pem, SERVER);
            assert.strictEqual(problems.length, 1);
            assert.match(problems[0], /is not a PEM certificate request|cannot be read as a certificate request/);
        });
    }
});
