import * as assert from "assert";
import {
    hubDesiredState, MeshMember, natsPeers, OperatorPeer, parseOperatorPeers, reservedMeshAddresses, WG_PERSISTENT_KEEPALIVE_SECONDS,
} from "../../lib/meshPeers";
import { MAX_NATS_NODES } from "../../lib/limits";
import { desiredStateProblems, RUNTIME_FORMAT_VERSION } from "../../lib/runtimeChannel";

const SUBNET = "10.44.0.0/24";
const HUB_ADDRESS = "10.44.0.1";
const key = (n: number) => Buffer.alloc(32, n).toString("base64");
const hub: MeshMember = { name: "wg-cache", address: HUB_ADDRESS, publicKey: key(1), endpoint: "203.0.113.1:51820", instanceId: "100" };
const nats: MeshMember[] = [0, 1, 2].map((i) => ({
    name: `meshstack-dev-${i}`, address: `10.44.0.${10 + i}`, publicKey: key(10 + i), endpoint: `203.0.113.${10 + i}:51820`, instanceId: String(200 + i),
}));
const operators: OperatorPeer[] = [{ name: "laptop-ana", publicKey: key(50), address: "10.44.0.200" }];

describe("operator peers: parseOperatorPeers", () => {
    it("parses name, key and address, sorted by address, extra spaces tolerated", () => {
        const parsed = parseOperatorPeers([`  laptop-ben ${key(51)}   10.44.0.201 `, `laptop-ana ${key(50)} 10.44.0.200`], SUBNET, HUB_ADDRESS);
        assert.deepStrictEqual(parsed, {
            ok: true,
            value: [{ name: "laptop-ana", publicKey: key(50), address: "10.44.0.200" }, { name: "laptop-ben", publicKey: key(51), address: "10.44.0.201" }],
        });
    });

    it("accepts no operators", () => {
        assert.deepStrictEqual(parseOperatorPeers([], SUBNET, HUB_ADDRESS), { ok: true, value: [] });
    });

    it("reports every bad entry at once, each by index and name, with the value and what is allowed", () => {
        const parsed = parseOperatorPeers([
            "only-two-words 10.44.0.200",
            `bad/name ${key(52)} 10.44.0.202`,
            "laptop-c not-a-key 10.44.0.203",
            `laptop-d ${key(53)} 10.45.0.1`,
        ], SUBNET, HUB_ADDRESS);
        assert.strictEqual(parsed.ok, false);
        const error = (parsed as { error: string }).error;
        assert.match(error, /^entry 0 "only-two-words 10\.44\.0\.200" is not "<name> <WireGuard public key> <address>"/);
        assert.match(error, /entry 1 \(bad\/name\): name "bad\/name" is not up to 63 letters, digits and \. _ -/);
        assert.match(error, /entry 2 \(laptop-c\): "not-a-key" is not a WireGuard public key \(base64 of 32 bytes\)/);
        assert.match(error, /entry 3 \(laptop-d\): address "10\.45\.0\.1" is not allowed; allowed: an address in 10\.44\.0\.0\/24 other than the network, the broadcast, the hub 10\.44\.0\.1 and the NATS range 10\.44\.0\.10-10\.44\.0\.16/);
    });

    it("refuses a second use of a name, a key or an address, naming the first entry", () => {
        const parsed = parseOperatorPeers([`a ${key(50)} 10.44.0.200`, `a ${key(50)} 10.44.0.200`], SUBNET, HUB_ADDRESS);
        assert.strictEqual(parsed.ok, false);
        const error = (parsed as { error: string }).error;
        for (const value of ["a", key(50), "10.44.0.200"]) assert.ok(error.includes(`${value} is also used by entry 0`), `${value}: ${error}`);
    });

    const reserved = ["10.44.0.0", "10.44.0.255", HUB_ADDRESS, "10.44.0.10", "10.44.0.13", `10.44.0.${10 + MAX_NATS_NODES - 1}`];
    for (const address of reserved) {
        it(`refuses the reserved address ${address}`, () => {
            const parsed = parseOperatorPeers([`op ${key(60)} ${address}`], SUBNET, HUB_ADDRESS);
            assert.strictEqual(parsed.ok, false);
            assert.match((parsed as { error: string }).error, new RegExp(`address "${address.replace(/\./g, "\\.")}" is not allowed`));
        });
    }

    it("allows the address right after the NATS range: only addresses a NATS node may ever get are kept back", () => {
        const address = `10.44.0.${10 + MAX_NATS_NODES}`;
        assert.deepStrictEqual(parseOperatorPeers([`op ${key(60)} ${address}`], SUBNET, HUB_ADDRESS), { ok: true, value: [{ name: "op", publicKey: key(60), address }] });
    });

    it("reserves the network, the broadcast, the hub and MAX_NATS_NODES NATS addresses", () => {
        assert.strictEqual(reservedMeshAddresses(SUBNET, HUB_ADDRESS).reserved.size, 3 + MAX_NATS_NODES);
    });
});

describe("mesh peers: who peers with whom", () => {
    it("gives the hub every NATS node (dialled, /32, keepalive) and every operator (dials in: no endpoint, no keepalive)", () => {
        assert.deepStrictEqual(hubDesiredState(hub, nats, operators), {
            version: RUNTIME_FORMAT_VERSION,
            node: "wg-cache",
            instanceId: "100",
            wireguard: {
                peers: [
                    ...nats.map((n) => ({ name: n.name, publicKey: n.publicKey, endpoint: n.endpoint, allowedIps: [`${n.address}/32`], keepaliveSeconds: WG_PERSISTENT_KEEPALIVE_SECONDS })),
                    { name: "laptop-ana", publicKey: key(50), allowedIps: ["10.44.0.200/32"] },
                ],
            },
        });
    });

    it("gives a NATS node the hub for the whole subnet and every other NATS node directly, never itself", () => {
        assert.deepStrictEqual(natsPeers(nats[1], hub, nats, SUBNET), [
            { name: "wg-cache", publicKey: key(1), endpoint: "203.0.113.1:51820", allowedIps: [SUBNET], keepaliveSeconds: WG_PERSISTENT_KEEPALIVE_SECONDS },
            { name: "meshstack-dev-0", publicKey: key(10), endpoint: "203.0.113.10:51820", allowedIps: ["10.44.0.10/32"], keepaliveSeconds: WG_PERSISTENT_KEEPALIVE_SECONDS },
            { name: "meshstack-dev-2", publicKey: key(12), endpoint: "203.0.113.12:51820", allowedIps: ["10.44.0.12/32"], keepaliveSeconds: WG_PERSISTENT_KEEPALIVE_SECONDS },
        ]);
    });

    it("makes desired states the channel accepts", () => {
        assert.deepStrictEqual(desiredStateProblems(hubDesiredState(hub, nats, operators), SUBNET), []);
        for (const self of nats) {
            const state = { version: RUNTIME_FORMAT_VERSION, node: self.name, instanceId: self.instanceId, wireguard: { peers: natsPeers(self, hub, nats, SUBNET) } };
            assert.deepStrictEqual(desiredStateProblems(state, SUBNET), [], self.name);
        }
    });
});
