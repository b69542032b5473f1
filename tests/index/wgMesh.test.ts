/**
 * The WireGuard mesh as the real program (index.ts) wires it, under the
 * mock cloud with the dev stack file and one operator peer: every member's
 * user-data brings up wg0 with no peers, and the desired states the program
 * writes make a full mesh (every NATS node dials every other directly and
 * the hub), while the hub lists every NATS node and every operator. Keys in
 * the desired states are the ones the nodes published, every desired state
 * carries root's SSH keys, and no private key is anywhere in the program.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DesiredPeer, DesiredState, desiredStateKey } from "../../lib/runtimeChannel";
import { sshEd25519PublicKey } from "../fixtures/sshPublicKey";
import { MockCloud, unwrapSecrets } from "../../tooling/mockCloud";
import { assertValidCloudConfig } from "../support/cloudInit";
import { runProgram } from "../support/engine";

const NODES = [0, 1, 2];
const SUBNET = "10.44.0.0/24";
const OPERATOR = { name: "laptop-ana", publicKey: "q6yPyxrcWI6K7tA1eW2Pvc0qUSf0cXfUVdWUmBjnWkk=", address: "10.44.0.200" };
const SSH_KEYS = [sshEd25519PublicKey(3, "ana@laptop"), sshEd25519PublicKey(4)];
// A PEM private key, or a literal WireGuard one (the first-boot script writes `PrivateKey = ` from the key it just made, never a value).
const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----|PrivateKey *= *[A-Za-z0-9+/]{43}=/;

describe("WireGuard mesh in the program (index.ts under the mock cloud, dev stack)", function () {
    this.timeout(120_000);
    let cloud: MockCloud;
    let outputs: Record<string, unknown>;
    let dir: string;

    const cloudConfigOf = (node: string) => String(unwrapSecrets(cloud.byName(`${node}-bootstrap-object`).inputs.content));
    const desired = (resource: string) => JSON.parse(String(unwrapSecrets(cloud.byName(resource).inputs).content)) as DesiredState;
    const publishedKey = (node: string) => String(unwrapSecrets(cloud.byName(`${node}-published`).outputs).publicKey);
    const endpointOf = (instance: string, port: number) => `${unwrapSecrets(cloud.byName(instance).outputs).ipAddress}:${port}`;
    const natsPeer = (i: number): DesiredPeer => ({
        name: `meshstack-dev-${i}`, publicKey: publishedKey(`nats-${i}`), endpoint: endpointOf(`nats-${i}-instance`, 51820), allowedIps: [`10.44.0.${10 + i}/32`], keepaliveSeconds: 25,
    });

    before(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-wgmesh-program-"));
        const operators = JSON.stringify([`${OPERATOR.name} ${OPERATOR.publicKey} ${OPERATOR.address}`]);
        ({ cloud, outputs } = await runProgram("dev", { preview: false, overrides: { "meshstack:wgOperatorPeers": operators, "meshstack:sshAuthorizedKeys": JSON.stringify(SSH_KEYS) } }));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("makes no WireGuard or node TLS key: the only private keys in the program are the two CAs'", () => {
        assert.deepStrictEqual(cloud.ofType("random:index/randomBytes:RandomBytes").map((r) => r.name), []);
        assert.deepStrictEqual(cloud.ofType("tls:index/privateKey:PrivateKey").map((r) => r.name).sort(), ["nats-client-ca-key", "nats-route-ca-key"]);
    });

    it("every member's cloud-config is valid, brings wg0 up with no peers and carries no private key", async () => {
        for (const node of ["wg-cache-node", ...NODES.map((i) => `nats-${i}`)]) {
            const text = cloudConfigOf(node);
            // The agent's renderer writes [Peer] sections at run time; no file in the user-data holds one.
            assert.doesNotMatch(text, /^\s*\[Peer\]\s*$/m, `${node}'s user-data names a peer`);
            assert.doesNotMatch(text, PRIVATE_KEY, `${node}'s user-data holds a private key`);
        }
        await assertValidCloudConfig(cloudConfigOf("wg-cache-node"), dir);
        await assertValidCloudConfig(cloudConfigOf("nats-0"), dir);
    });

    it("writes one desired state per member into the runtime bucket, each for the member's own instance", () => {
        const runtimeBucket = unwrapSecrets(cloud.byName("rendezvous-runtime-bucket").outputs).label;
        const documents = [["mesh-hub", "wg-cache", "wg-cache-node"], ...NODES.map((i) => [`mesh-nats-${i}`, `meshstack-dev-${i}`, `nats-${i}`])];
        for (const [resource, node, meshNode] of documents) {
            const inputs = unwrapSecrets(cloud.byName(resource).inputs);
            assert.deepStrictEqual([inputs.bucket, inputs.key], [runtimeBucket, desiredStateKey("dev", node)], resource);
            const state = desired(resource);
            // The instance id its poll waited for: the one that published the keys in this state.
            assert.deepStrictEqual([state.node, state.instanceId], [node, String(unwrapSecrets(cloud.byName(`${meshNode}-published`).inputs).instanceId)]);
            assert.doesNotMatch(inputs.content, PRIVATE_KEY);
        }
    });

    it("gives every member's desired state root's SSH keys from meshstack:sshAuthorizedKeys, and every instance the same keys at creation", () => {
        for (const resource of ["mesh-hub", ...NODES.map((i) => `mesh-nats-${i}`)]) assert.deepStrictEqual(desired(resource).authorizedKeys, SSH_KEYS, resource);
        for (const instance of ["wg-cache-node-instance", ...NODES.map((i) => `nats-${i}-instance`)]) {
            assert.deepStrictEqual(unwrapSecrets(cloud.byName(instance).inputs).authorizedKeys, SSH_KEYS, instance);
        }
    });

    it("hub: one peer per NATS node with the key it published and its endpoint, plus each operator (/32, no endpoint)", () => {
        assert.deepStrictEqual(desired("mesh-hub").wireguard.peers, [
            ...NODES.map(natsPeer),
            { name: OPERATOR.name, publicKey: OPERATOR.publicKey, allowedIps: [`${OPERATOR.address}/32`] },
        ]);
    });

    it("NATS nodes: a full mesh; every node dials every other directly (/32) and the hub for the rest of the subnet", () => {
        const hub: DesiredPeer = {
            name: "wg-cache", publicKey: publishedKey("wg-cache-node"), endpoint: String(outputs.wgCacheEndpoint), allowedIps: [SUBNET], keepaliveSeconds: 25,
        };
        for (const i of NODES) {
            const peers = desired(`mesh-nats-${i}`).wireguard.peers;
            const byName = Object.fromEntries(peers.map((p) => [p.name, p]));
            assert.deepStrictEqual(Object.keys(byName).sort(), ["wg-cache", ...NODES.filter((j) => j !== i).map((j) => `meshstack-dev-${j}`)].sort(), `peers of nats-${i}`);
            assert.deepStrictEqual(byName["wg-cache"], hub);
            for (const j of NODES.filter((n) => n !== i)) assert.deepStrictEqual(byName[`meshstack-dev-${j}`], natsPeer(j), `nats-${i} -> nats-${j}`);
        }
    });

    it("exports a paste-ready [Peer] section for operators with the hub's published key and the whole subnet", () => {
        const section = String(outputs.wgCachePeerSection);
        assert.ok(section.split("\n").includes(`PublicKey = ${publishedKey("wg-cache-node")}`));
        assert.ok(section.split("\n").includes(`Endpoint = ${outputs.wgCacheEndpoint}`));
        assert.ok(section.split("\n").includes(`AllowedIPs = ${SUBNET}`));
    });
});
