import * as assert from "assert";
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { connect } from "@nats-io/transport-node";
import { NATS_LAME_DUCK, NATS_NODE_LAYOUT, NATS_STOP_TIMEOUT_SECONDS, renderNatsUnit } from "../../cloudinit/nats";
import { WG_QUICK_UNIT } from "../../cloudinit/wgMesh";
import { LoopbackNatsCluster } from "../support/natsCluster";
import { waitFor } from "../support/ports";

const run = promisify(execFile);
const UNIT = renderNatsUnit({ layout: NATS_NODE_LAYOUT, wants: [WG_QUICK_UNIT] });

/** systemd's own exposure score of a unit text (0 = fully sandboxed, 10 = none). */
async function exposure(unitText: string): Promise<number> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-unit-"));
    try {
        const file = path.join(dir, "nats-server.service");
        fs.writeFileSync(file, unitText);
        const { stdout } = await run("systemd-analyze", ["security", "--offline=yes", "--no-pager", file]);
        const match = /Overall exposure level for nats-server\.service: ([0-9.]+)/.exec(stdout);
        assert.ok(match, stdout);
        return Number(match[1]);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

function without(directive: string): string {
    const lines = UNIT.split("\n");
    assert.ok(lines.some((l) => l.startsWith(`${directive}=`)), `the unit sets ${directive}`);
    return lines.filter((l) => !l.startsWith(`${directive}=`)).join("\n");
}

describe("NATS node hardening", function () {
    this.timeout(120_000);

    describe("the unit, as systemd scores it", () => {
        it("is sandboxed to an exposure of at most 1.5 (3.2 before the system-call filter and /proc hiding)", async () => {
            assert.ok((await exposure(UNIT)) <= 1.5);
        });

        for (const directive of ["SystemCallFilter", "ProtectProc", "PrivateMounts"]) {
            it(`scores worse without ${directive}`, async () => {
                assert.ok((await exposure(without(directive))) > (await exposure(UNIT)), `${directive} must lower the exposure`);
            });
        }

        it("hides every /proc entry but its own processes' (ProcSubset=pid, with ProtectProc=invisible)", () => {
            assert.match(UNIT, /^ProtectProc=invisible$/m);
            assert.match(UNIT, /^ProcSubset=pid$/m);
        });

        it("stops the server with SIGUSR2 (lame duck) and waits longer than lame duck takes", () => {
            assert.match(UNIT, /^KillSignal=SIGUSR2$/m);
            const timeout = Number(/^TimeoutStopSec=([0-9]+)$/m.exec(UNIT)![1]);
            assert.strictEqual(timeout, NATS_STOP_TIMEOUT_SECONDS);
            assert.ok(timeout > NATS_LAME_DUCK.durationSeconds + NATS_LAME_DUCK.graceSeconds);
        });
    });

    describe("on a real 3-server cluster (rendered nats.conf, loopback)", () => {
        let cluster: LoopbackNatsCluster;
        this.timeout(180_000);
        before(async () => {
            cluster = await LoopbackNatsCluster.create();
            await cluster.startAll();
        });
        after(async () => cluster?.destroy());

        const clientOptions = (servers: string[]) => ({
            servers,
            tls: { ca: cluster.clientCa.certPem, cert: cluster.client.certPem, key: cluster.client.keyPem, servername: cluster.serviceName },
            timeout: 3000,
            reconnect: false,
        });

        it("advertises no peer URLs to clients (no_advertise): a client knows only the server it was given", async () => {
            const nc = await connect(clientOptions([cluster.clientUrl(0)]));
            try {
                const info = (nc as unknown as { info?: { connect_urls?: string[]; cluster?: string } }).info;
                assert.strictEqual(info?.cluster, cluster.clusterName, "connected to a clustered server");
                assert.deepStrictEqual(info?.connect_urls ?? [], []);
            } finally {
                await nc.close();
            }
        });

        it("enters lame-duck mode on SIGUSR2: clients are told (ldm), then the server exits by itself", async () => {
            const index = 2;
            const nc = await connect(clientOptions([cluster.clientUrl(index)]));
            const statuses: string[] = [];
            void (async () => {
                for await (const status of nc.status()) statuses.push(String(status.type));
            })();
            const started = Date.now();
            await cluster.stop(index, "SIGUSR2");
            const took = (Date.now() - started) / 1000;
            assert.match(cluster.logs(index), /Entering lame duck mode/);
            await waitFor("the client to hear of lame duck mode", async () => statuses.includes("ldm"), 5000);
            assert.ok(took <= NATS_LAME_DUCK.durationSeconds + NATS_LAME_DUCK.graceSeconds + 5, `exited after ${took}s`);
            await nc.close().catch(() => undefined);
        });
    });
});
