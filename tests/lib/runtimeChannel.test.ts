import { truncatedPrivateKeyPem } from "../fixtures/privateKeyPem";
import * as assert from "assert";
import {
    DesiredState, desiredStateKey, desiredStateProblems, publishedMaterialKey, publishedMaterialProblems, RUNTIME_FORMAT_VERSION,
} from "../../lib/runtimeChannel";

const KEY_A = "iIBAl9Nwao81+tKfMcp9c5V0EIUE4txeIAFcCHkGBVM=";
const KEY_B = "3CMqZbbnm3mWqTY1Mp5FsXAEz6MgX6j8mb9Ifv1+hGE=";
const CSR = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBzzCCAXQCAQAwGjEYMBYGA1UEAwwPbWVzaHN0YWNrLWRldi0x\n-----END CERTIFICATE REQUEST-----\n";
const PRIVATE_PEM = truncatedPrivateKeyPem();
const expected = { node: "meshstack-dev-1", instanceId: "4711", requestNames: ["route", "server"] };
const material = (overrides: Record<string, unknown> = {}) => ({
    version: RUNTIME_FORMAT_VERSION, node: "meshstack-dev-1", instanceId: "4711", wgPublicKey: KEY_A, certificateRequests: { route: CSR, server: CSR }, ...overrides,
});

describe("runtime channel: object keys", () => {
    it("names a node's published material by stack, node and boot generation", () => {
        assert.strictEqual(publishedMaterialKey("dev", "meshstack-dev-1", "a1b2c3"), "published/dev/meshstack-dev-1/a1b2c3.json");
    });

    it("names a node's desired state by stack and node: one document, updated in place", () => {
        assert.strictEqual(desiredStateKey("dev", "wg-cache"), "desired/dev/wg-cache.json");
    });

    const bad: [string, () => string, RegExp][] = [
        ["a stack with a slash", () => desiredStateKey("dev/../prod", "n"), /^stack "dev\/\.\.\/prod" cannot name a runtime object; allowed: letters, digits and \. _ - \(not first\)$/],
        ["a node starting with a dot", () => publishedMaterialKey("dev", ".n", "g"), /^node "\.n" cannot name/],
        ["an empty generation", () => publishedMaterialKey("dev", "n", ""), /^generation "" cannot name/],
        ["a node with a space", () => desiredStateKey("dev", "a b"), /^node "a b" cannot name/],
    ];
    for (const [what, key, message] of bad) {
        it(`refuses ${what}, naming the part and what is allowed`, () => {
            assert.throws(key, (err: Error) => {
                assert.match(err.message, message);
                assert.match(err.message, /allowed: letters, digits and \. _ - \(not first\)$/);
                return true;
            });
        });
    }
});

describe("runtime channel: publishedMaterialProblems", () => {
    it("accepts this node's material of this instance with every expected request", () => {
        assert.deepStrictEqual(publishedMaterialProblems(material(), expected), []);
    });

    it("accepts a hub's material: no requests expected, none published", () => {
        assert.deepStrictEqual(publishedMaterialProblems(material({ node: "wg-cache", certificateRequests: {} }), { node: "wg-cache", instanceId: "4711", requestNames: [] }), []);
    });

    it("takes the instance id as cloud-init prints it, number or string", () => {
        assert.deepStrictEqual(publishedMaterialProblems(material({ instanceId: 4711 }), expected), []);
    });

    it("refuses a predecessor's document (another instance id), saying so", () => {
        assert.deepStrictEqual(publishedMaterialProblems(material({ instanceId: "4710" }), expected), ['is from instance "4710", not 4711 (a previous instance\'s key)']);
    });

    const refused: [string, unknown, RegExp][] = [
        ["a JSON string", "iIBAl9Nwao81", /^is not a JSON object$/],
        ["null", null, /^is not a JSON object$/],
        ["another format version", material({ version: 2 }), /^has version 2, not 1$/],
        ["another node's document", material({ node: "meshstack-dev-2" }), /^is from node "meshstack-dev-2", not meshstack-dev-1$/],
        ["no WireGuard key", material({ wgPublicKey: undefined }), /^has no valid WireGuard public key$/],
        ["a key of 31 bytes", material({ wgPublicKey: Buffer.alloc(31, 1).toString("base64") }), /^has no valid WireGuard public key$/],
        ["a missing request", material({ certificateRequests: { route: CSR } }), /^has no PEM certificate request "server"$/],
        ["a request that is not a PEM CSR", material({ certificateRequests: { route: CSR, server: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" } }), /^has no PEM certificate request "server"$/],
        ["a private key anywhere in it", material({ extra: PRIVATE_PEM }), /^holds private key material \(refused; a node publishes public material only\)$/],
    ];
    for (const [what, doc, message] of refused) {
        it(`refuses ${what}`, () => {
            const problems = publishedMaterialProblems(doc, expected);
            assert.strictEqual(problems.length, 1, JSON.stringify(problems));
            assert.match(problems[0], message);
        });
    }

    it("names every problem at once", () => {
        const problems = publishedMaterialProblems(material({ version: 0, node: "x", instanceId: "1", wgPublicKey: "", certificateRequests: {} }), expected);
        assert.strictEqual(problems.length, 6, JSON.stringify(problems));
    });
});

describe("runtime channel: desiredStateProblems", () => {
    const SUBNET = "10.44.0.0/24";
    const state = (peers: DesiredState["wireguard"]["peers"], extra: Partial<DesiredState> = {}): DesiredState => ({
        version: RUNTIME_FORMAT_VERSION, node: "wg-cache", instanceId: "4711", wireguard: { peers }, ...extra,
    });
    const natsPeer = { name: "meshstack-dev-0", publicKey: KEY_A, endpoint: "203.0.113.10:51820", allowedIps: ["10.44.0.10/32"], keepaliveSeconds: 25 };

    it("accepts peers with WireGuard keys and allowed IPs inside the subnet, the whole subnet included", () => {
        assert.deepStrictEqual(desiredStateProblems(state([natsPeer, { name: "wg-cache", publicKey: KEY_B, allowedIps: [SUBNET] }]), SUBNET), []);
    });

    it("accepts public certificates and routes", () => {
        const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert.deepStrictEqual(desiredStateProblems(state([natsPeer], { certificates: { "route.crt": pem }, natsRoutes: ["10.44.0.11:6222"] }), SUBNET), []);
    });

    it("refuses a private-key PEM anywhere in the document: the runtime bucket is for public material only", () => {
        for (const kind of ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"]) {
            const pem = PRIVATE_PEM.replaceAll("PRIVATE KEY", kind);
            assert.deepStrictEqual(
                desiredStateProblems(state([natsPeer], { certificates: { "route.key": pem } }), SUBNET),
                ["desired state of wg-cache holds private key material; the runtime bucket is for public material only"],
                kind,
            );
        }
    });

    it("refuses a key that is not a WireGuard public key, naming the peer and the node", () => {
        assert.deepStrictEqual(desiredStateProblems(state([{ ...natsPeer, publicKey: "c2VjcmV0" }]), SUBNET), ['peer meshstack-dev-0 of wg-cache: "c2VjcmV0" is not a WireGuard public key']);
    });

    it("refuses a key listed twice (WireGuard keeps one peer per key)", () => {
        assert.deepStrictEqual(desiredStateProblems(state([natsPeer, { ...natsPeer, name: "meshstack-dev-1", allowedIps: ["10.44.0.11/32"] }]), SUBNET), [
            `peer meshstack-dev-1 of wg-cache: public key ${KEY_A} is listed twice`,
        ]);
    });

    it("refuses allowed IPs outside the mesh subnet, and what is not an address", () => {
        assert.deepStrictEqual(desiredStateProblems(state([{ ...natsPeer, allowedIps: ["0.0.0.0/0", "10.44.0.10/32", "fd00::/8"] }]), SUBNET), [
            "peer meshstack-dev-0 of wg-cache: allowed IPs 0.0.0.0/0 are outside the mesh subnet 10.44.0.0/24",
            "peer meshstack-dev-0 of wg-cache: allowed IPs fd00::/8 are outside the mesh subnet 10.44.0.0/24",
        ]);
    });
});
