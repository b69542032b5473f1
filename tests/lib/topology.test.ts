import * as assert from "assert";
import { natsWgAddressPlan } from "../../lib/topology";

describe("NATS WireGuard address plan (lib/topology)", () => {
    it("fills a subnet up to the address below its broadcast address", () => {
        assert.deepStrictEqual(natsWgAddressPlan("10.44.0.1/28", 5), { ok: true, value: ["10.44.0.10", "10.44.0.11", "10.44.0.12", "10.44.0.13", "10.44.0.14"] });
    });

    it("refuses a plan whose last node would take the broadcast address, saying which prefix has room", () => {
        assert.deepStrictEqual(natsWgAddressPlan("10.44.0.1/28", 6), { ok: false, error: "subnet 10.44.0.0/28 has no room for 6 NATS nodes at .10-.15; allowed: a prefix of /27 or wider" });
    });

    it("says node, not nodes, for one", () => {
        assert.deepStrictEqual(natsWgAddressPlan("10.44.0.1/29", 1), { ok: false, error: "subnet 10.44.0.0/29 has no room for 1 NATS node at .10-.10; allowed: a prefix of /28 or wider" });
    });

    it("refuses a hub address on the first node's address, naming the range it must avoid", () => {
        assert.deepStrictEqual(natsWgAddressPlan("10.44.0.10/24", 3), { ok: false, error: "10.44.0.10 collides with NATS node 0's WireGuard address; allowed: an address outside .10-.12" });
    });

    it("accepts a hub address just below the nodes' range", () => {
        assert.deepStrictEqual(natsWgAddressPlan("10.44.0.9/24", 3), { ok: true, value: ["10.44.0.10", "10.44.0.11", "10.44.0.12"] });
    });
});
