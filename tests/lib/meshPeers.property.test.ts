import * as assert from "assert";
import fc from "fast-check";
import { intToIpv4, ipv4ToInt } from "../../lib/ip";
import { MAX_NATS_NODES } from "../../lib/limits";
import { hubDesiredState, MeshMember, natsPeers, parseOperatorPeers } from "../../lib/meshPeers";
import { NATS_FIRST_WG_HOST } from "../../lib/topology";

const RUNS = { numRuns: 300 };
const BASE = ipv4ToInt("10.44.0.0");
const key = (n: number) => Buffer.alloc(32, n).toString("base64");
const subnetOf = (prefix: number) => `10.44.0.0/${prefix}`;
const hubOf = () => intToIpv4(BASE + 1);
/** Host offsets no operator may take: network, hub, every NATS address up to MAX_NATS_NODES, broadcast. */
const reservedOffset = (offset: number, size: number) =>
    offset === 0 || offset === 1 || offset === size - 1 || (offset >= NATS_FIRST_WG_HOST && offset < NATS_FIRST_WG_HOST + MAX_NATS_NODES);

type Fault = "none" | "words" | "name" | "key" | "outside" | "reserved";

describe("operator peers (property)", () => {
    it("accepts exactly the lists without a bad entry, and names every bad entry at once", () => {
        fc.assert(
            fc.property(
                fc.integer({ min: 22, max: 26 }),
                fc.array(fc.constantFrom<Fault>("none", "none", "none", "words", "name", "key", "outside", "reserved"), { maxLength: 12 }),
                fc.nat(),
                (prefix, faults, seed) => {
                    const size = 2 ** (32 - prefix);
                    const free = Array.from({ length: size }, (_, offset) => offset).filter((offset) => !reservedOffset(offset, size));
                    const entries = faults.map((fault, i) => {
                        const offset = free[(seed + i) % free.length];
                        const address = fault === "outside" ? "10.45.0.100" : fault === "reserved" ? intToIpv4(BASE + NATS_FIRST_WG_HOST + ((seed + i) % MAX_NATS_NODES)) : intToIpv4(BASE + offset);
                        const name = fault === "name" ? `op/${i}` : `op-${i}`;
                        const publicKey = fault === "key" ? "not-a-key" : key(100 + i);
                        return fault === "words" ? `op-${i} ${publicKey}` : `${name} ${publicKey} ${address}`;
                    });
                    // Even a /26 has more free addresses than the list has entries: no address repeats.
                    const parsed = parseOperatorPeers(entries, subnetOf(prefix), hubOf());
                    const bad = faults.map((fault, i) => (fault === "none" ? -1 : i)).filter((i) => i >= 0);
                    if (bad.length === 0) {
                        assert.ok(parsed.ok, JSON.stringify(parsed));
                        assert.strictEqual(parsed.value.length, entries.length);
                    } else {
                        assert.ok(!parsed.ok);
                        for (const i of bad) assert.match(parsed.error, new RegExp(`entry ${i}\\b`), `entry ${i} (${faults[i]}) not named`);
                    }
                },
            ),
            RUNS,
        );
    });

    it("accepts an address exactly when it is inside the subnet and not reserved (NATS range up to MAX_NATS_NODES included)", () => {
        fc.assert(
            fc.property(fc.integer({ min: 22, max: 28 }), fc.nat({ max: 2 ** 10 }), (prefix, offset) => {
                const size = 2 ** (32 - prefix);
                const parsed = parseOperatorPeers([`op ${key(7)} ${intToIpv4(BASE + offset)}`], subnetOf(prefix), hubOf());
                assert.strictEqual(parsed.ok, offset < size && !reservedOffset(offset, size), `offset ${offset} in /${prefix}: ${JSON.stringify(parsed)}`);
            }),
            RUNS,
        );
    });
});

describe("mesh peers (property)", () => {
    const subnet = "10.44.0.0/24";
    const hub: MeshMember = { name: "wg-cache", address: "10.44.0.1", publicKey: key(1), endpoint: "203.0.113.1:51820", instanceId: "1" };
    const membersOf = (count: number): MeshMember[] =>
        Array.from({ length: count }, (_, i) => ({ name: `nats-${i}`, address: `10.44.0.${NATS_FIRST_WG_HOST + i}`, publicKey: key(10 + i), endpoint: `203.0.113.${10 + i}:51820`, instanceId: String(100 + i) }));

    it("forms a full mesh: every NATS node lists the hub first, for the whole subnet, then every other node once as a /32, never itself", () => {
        fc.assert(
            fc.property(fc.integer({ min: 1, max: MAX_NATS_NODES }), (count) => {
                const members = membersOf(count);
                for (const self of members) {
                    const peers = natsPeers(self, hub, members, subnet);
                    assert.deepStrictEqual([peers[0].name, peers[0].allowedIps], [hub.name, [subnet]]);
                    const others = peers.slice(1);
                    assert.deepStrictEqual(others.map((p) => p.name).sort(), members.filter((m) => m !== self).map((m) => m.name).sort());
                    assert.ok(!peers.some((p) => p.publicKey === self.publicKey), "a node never peers with itself");
                    for (const peer of others) {
                        const member = members.find((m) => m.name === peer.name)!;
                        assert.deepStrictEqual([peer.publicKey, peer.endpoint, peer.allowedIps], [member.publicKey, member.endpoint, [`${member.address}/32`]]);
                        // Symmetric: the other side lists this node too.
                        assert.ok(natsPeers(member, hub, members, subnet).some((p) => p.name === self.name));
                    }
                }
            }),
        );
    });

    it("gives the hub one peer per NATS node and per operator, each a /32", () => {
        fc.assert(
            fc.property(fc.integer({ min: 1, max: MAX_NATS_NODES }), fc.integer({ min: 0, max: 20 }), (count, operatorCount) => {
                const operators = Array.from({ length: operatorCount }, (_, i) => ({ name: `op-${i}`, publicKey: key(100 + i), address: `10.44.0.${100 + i}` }));
                const peers = hubDesiredState(hub, membersOf(count), operators).wireguard.peers;
                assert.strictEqual(peers.length, count + operatorCount);
                assert.ok(peers.every((p) => p.allowedIps.length === 1 && p.allowedIps[0].endsWith("/32")));
                assert.strictEqual(peers.filter((p) => p.endpoint === undefined).length, operatorCount);
            }),
        );
    });
});
