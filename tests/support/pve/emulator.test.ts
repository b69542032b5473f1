/**
 * The Proxmox VE API emulator holds to what the real API does, checked with
 * raw HTTPS calls (no provider code), so the provider's tests mean something.
 * Every reply it sends here is checked against the API schema Proxmox
 * publishes (tests/contracts/pve-api-lxc.json): an emulator checked only
 * against our own client would agree with it by construction.
 */
import * as assert from "assert";
import * as https from "https";
import { PveEmulator } from "../../support/pve/emulator";
import { loadPveSchema, PveReplySeen, replyProblems, schemaPathOf, valueProblems } from "../../support/pve/schema";
import { EMULATED_ARCHIVE_HOSTNAME, EMULATED_ARCHIVE_MAC, PveTarget, startPveEmulator } from "../../support/pve/target";

const SCHEMA = loadPveSchema();

/** Every endpoint the emulator serves, as the schema names it: the check below must have seen a reply from each. */
const SERVED = [
    "GET /version", "GET /nodes/{node}/vzdump/extractconfig", "POST /nodes/{node}/lxc", "GET /nodes/{node}/tasks/{upid}/status",
    "GET /nodes/{node}/tasks/{upid}/log", "GET /nodes/{node}/lxc/{vmid}/config", "PUT /nodes/{node}/lxc/{vmid}/config",
    "PUT /nodes/{node}/lxc/{vmid}/resize", "GET /nodes/{node}/lxc/{vmid}/status/current", "GET /nodes/{node}/lxc/{vmid}/interfaces",
    "POST /nodes/{node}/lxc/{vmid}/status/start", "POST /nodes/{node}/lxc/{vmid}/status/stop", "DELETE /nodes/{node}/lxc/{vmid}",
];

interface Raw {
    status: number;
    reason: string;
    body: any;
}

function raw(target: PveTarget, method: string, apiPath: string, params: Record<string, string> = {}, authorization?: string): Promise<Raw> {
    const form = new URLSearchParams(params).toString();
    const withBody = method !== "GET" && method !== "DELETE";
    const url = new URL(`${target.endpoint}/api2/json${apiPath}${!withBody && form ? `?${form}` : ""}`);
    return new Promise((resolve, reject) => {
        const req = https.request(url, {
            method, ca: target.caBundlePem,
            headers: {
                Authorization: authorization ?? `PVEAPIToken=${target.tokenId}=${target.tokenSecret}`,
                ...(withBody ? { "Content-Type": "application/x-www-form-urlencoded" } : {}),
            },
        }, (res) => {
            let text = "";
            res.on("data", (c) => (text += c));
            res.on("end", () => resolve({ status: res.statusCode!, reason: res.statusMessage!, body: JSON.parse(text) }));
        });
        req.on("error", reject);
        if (withBody) req.write(form);
        req.end();
    });
}

async function waitTask(target: PveTarget, upid: string): Promise<any> {
    for (;;) {
        const r = await raw(target, "GET", `/nodes/pve/tasks/${encodeURIComponent(upid)}/status`);
        if (r.status === 200 && r.body.data.status === "stopped") return r.body.data;
        await new Promise((done) => setTimeout(done, 20));
    }
}

describe("Proxmox VE API emulator", function () {
    this.timeout(30_000);
    let target: PveTarget;
    let emulator: PveEmulator;

    /** Problems found in replies since the last test ended. */
    let problems: string[] = [];
    /** "METHOD /schema/path STATUS" of every reply checked, with how many. */
    const checked = new Map<string, number>();

    before(async () => {
        target = await startPveEmulator({ timeScale: 0.05, timings: { resizeMs: 40_000 } });
        emulator = target.emulator!;
        emulator.tokens.push({ id: "auditor@pve!ro", secret: "ro-secret-0000", privileges: ["VM.Audit", "Datastore.Audit"] });
        emulator.onReply = (reply: PveReplySeen) => {
            problems.push(...replyProblems(SCHEMA, reply));
            const key = `${reply.method} ${schemaPathOf(SCHEMA, reply.method, reply.path) ?? reply.path} ${reply.status}`;
            checked.set(key, (checked.get(key) ?? 0) + 1);
        };
    });
    after(() => target?.stop());

    // Each test's replies are held to the published schema: types (boolean as 0/1), enums, the error envelope.
    afterEach(() => {
        const found = problems;
        problems = [];
        assert.deepStrictEqual(found, [], "the emulator sent replies the published Proxmox VE API schema does not allow");
    });

    it("answers with the {\"data\": ...} envelope", async () => {
        const r = await raw(target, "GET", "/version");
        assert.strictEqual(r.status, 200);
        assert.strictEqual(typeof r.body.data.version, "string");
    });

    it("refuses a bad token with 401 after the (scaled) 3 s delay, the message in the reason phrase", async () => {
        const started = Date.now();
        const r = await raw(target, "GET", "/version", {}, `PVEAPIToken=${target.tokenId}=wrong`);
        assert.deepStrictEqual([r.status, r.reason, r.body.data], [401, "invalid token value!", null]);
        assert.ok(Date.now() - started >= 140, "delayed");
        assert.strictEqual((await raw(target, "GET", "/version", {}, "Bearer x")).status, 401);
    });

    it("refuses a missing privilege with 403 Permission check failed", async () => {
        const r = await raw(target, "POST", "/nodes/pve/lxc", { vmid: "300", ostemplate: target.archive, restore: "1" }, "PVEAPIToken=auditor@pve!ro=ro-secret-0000");
        assert.deepStrictEqual([r.status, r.reason], [403, "Permission check failed (/vms/300, VM.Allocate)"]);
    });

    it("reports parameter errors as 400 with an errors object", async () => {
        const r = await raw(target, "POST", "/nodes/pve/lxc", { vmid: "5", restore: "1" });
        assert.strictEqual(r.status, 400);
        assert.strictEqual(r.reason, "Parameter verification failed.");
        assert.deepStrictEqual(Object.keys(r.body.errors).sort(), ["ostemplate", "vmid"]);
        assert.strictEqual(r.body.data, null);
    });

    it("answers a poll for a task it does not know yet with 400, the generic reason and errors.upid", async () => {
        const restore = await raw(target, "POST", "/nodes/pve/lxc", { vmid: "303", ostemplate: target.archive, restore: "1", storage: "local-lvm" });
        const early = await raw(target, "GET", `/nodes/pve/tasks/${encodeURIComponent(restore.body.data)}/status`);
        assert.deepStrictEqual([early.status, early.reason, early.body], [400, "Parameter verification failed.", { data: null, errors: { upid: "no such task" } }]);
        await waitTask(target, restore.body.data);
    });

    it("extractconfig returns the archived config with its description as comment lines", async () => {
        const r = await raw(target, "GET", "/nodes/pve/vzdump/extractconfig", { volume: target.archive });
        assert.match(r.body.data, /^#meshstack-golden-prepared v1\n/);
        assert.match(r.body.data, new RegExp(`hwaddr=${EMULATED_ARCHIVE_MAC}`));
    });

    it("a restore without unique=1 keeps the archived MAC and hostname; with unique=1 and a hostname it does not", async () => {
        const kept = await raw(target, "POST", "/nodes/pve/lxc", { vmid: "301", ostemplate: target.archive, restore: "1", storage: "local-lvm" });
        assert.match(kept.body.data, /^UPID:pve:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzrestore:301:meshstack@pve!deploy:$/);
        const locked = await raw(target, "PUT", "/nodes/pve/lxc/301/config", { onboot: "1" });
        assert.deepStrictEqual([locked.status, locked.reason], [500, "CT is locked (create)"]);
        assert.strictEqual((await waitTask(target, kept.body.data)).exitstatus, "OK");
        assert.strictEqual(emulator.guestConfig(301)!.hostname, EMULATED_ARCHIVE_HOSTNAME);
        assert.match(emulator.guestConfig(301)!.net0, new RegExp(`hwaddr=${EMULATED_ARCHIVE_MAC}`));
        const unique = await raw(target, "POST", "/nodes/pve/lxc", { vmid: "302", ostemplate: target.archive, restore: "1", unique: "1", hostname: "own", storage: "local-lvm" });
        await waitTask(target, unique.body.data);
        assert.strictEqual(emulator.guestConfig(302)!.hostname, "own");
        assert.doesNotMatch(emulator.guestConfig(302)!.net0, new RegExp(EMULATED_ARCHIVE_MAC));
        const again = await raw(target, "POST", "/nodes/pve/lxc", { vmid: "302", ostemplate: target.archive, restore: "1" });
        assert.deepStrictEqual([again.status, again.reason], [500, "CT 302 already exists on node 'pve'"]);
    });

    it("a resize task holds the config lock: a config write fails after the (scaled) 10 s wait with the exact lock text", async () => {
        const resize = await raw(target, "PUT", "/nodes/pve/lxc/302/resize", { disk: "rootfs", size: "+2G" });
        assert.match(resize.body.data, /:resize:302:/);
        const started = Date.now();
        const write = await raw(target, "PUT", "/nodes/pve/lxc/302/config", { mp0: "local-lvm:1,mp=/srv" });
        assert.deepStrictEqual([write.status, write.reason], [500, "can't lock file '/run/lock/lxc/pve-config-302.lock' - got timeout"]);
        assert.ok(Date.now() - started >= 480, `waited ${Date.now() - started} ms`);
        await waitTask(target, resize.body.data);
        assert.match(emulator.guestConfig(302)!.rootfs, /size=10G/);
        assert.strictEqual((await raw(target, "PUT", "/nodes/pve/lxc/302/config", { mp0: "local-lvm:1,mp=/srv" })).status, 200);
        const same = await raw(target, "PUT", "/nodes/pve/lxc/302/resize", { disk: "rootfs", size: "10G" });
        assert.deepStrictEqual([same.status, same.reason], [500, "disk is already at specified size"]);
        const shrink = await raw(target, "PUT", "/nodes/pve/lxc/302/resize", { disk: "rootfs", size: "4G" });
        assert.deepStrictEqual([shrink.status, shrink.reason], [500, "unable to shrink disk size"]);
    });

    it("a stale digest is a conflict", async () => {
        const { body } = await raw(target, "GET", "/nodes/pve/lxc/302/config");
        assert.strictEqual((await raw(target, "PUT", "/nodes/pve/lxc/302/config", { onboot: "1", digest: body.data.digest })).status, 200);
        const stale = await raw(target, "PUT", "/nodes/pve/lxc/302/config", { onboot: "0", digest: body.data.digest });
        assert.deepStrictEqual([stale.status, stale.reason], [500, "detected modified configuration - file changed by other user? Try again."]);
    });

    it("a netN written without hwaddr gets a fresh MAC", async () => {
        const before = emulator.guestConfig(301)!.net0;
        await raw(target, "PUT", "/nodes/pve/lxc/301/config", { net0: "name=eth0,bridge=vmbr0,ip=dhcp" });
        assert.notStrictEqual(emulator.guestConfig(301)!.net0, before);
        assert.match(emulator.guestConfig(301)!.net0, /hwaddr=BC:24:11:/);
    });

    it("start, stop and destroy are tasks; destroying a missing CT says its config does not exist", async () => {
        const start = await raw(target, "POST", "/nodes/pve/lxc/301/status/start");
        await waitTask(target, start.body.data);
        assert.strictEqual((await raw(target, "POST", "/nodes/pve/lxc/301/status/start")).reason, "CT 301 already running");
        assert.strictEqual((await raw(target, "DELETE", "/nodes/pve/lxc/301")).reason, "CT 301 is running - destroy failed");
        await waitTask(target, (await raw(target, "POST", "/nodes/pve/lxc/301/status/stop")).body.data);
        await waitTask(target, (await raw(target, "DELETE", "/nodes/pve/lxc/301")).body.data);
        const gone = await raw(target, "DELETE", "/nodes/pve/lxc/301");
        assert.deepStrictEqual([gone.status, gone.reason], [500, "Configuration file 'nodes/pve/lxc/301.conf' does not exist"]);
    });

    it("answers the config typed by the schema: integers as numbers, booleans as 0/1", async () => {
        const { body } = await raw(target, "GET", "/nodes/pve/lxc/302/config");
        const { onboot, unprivileged, memory, cores, swap, hostname } = body.data;
        assert.deepStrictEqual({ onboot, unprivileged, memory, cores, swap, hostname }, { onboot: 1, unprivileged: 1, memory: 2048, cores: 2, swap: 512, hostname: "own" });
    });

    it("a running CT reports status running, its vmid as a number, and its interfaces with hardware-address and ip-addresses", async () => {
        await waitTask(target, (await raw(target, "POST", "/nodes/pve/lxc/302/status/start")).body.data);
        const status = await raw(target, "GET", "/nodes/pve/lxc/302/status/current");
        assert.deepStrictEqual([status.body.data.status, status.body.data.vmid], ["running", 302]);
        const interfaces = await raw(target, "GET", "/nodes/pve/lxc/302/interfaces");
        const eth0 = interfaces.body.data.find((i: { name: string }) => i.name === "eth0");
        assert.strictEqual(eth0["hardware-address"], eth0.hwaddr);
        assert.ok(Array.isArray(eth0["ip-addresses"]));
    });

    it("a task's log is numbered lines ending in its result", async () => {
        const stop = await raw(target, "POST", "/nodes/pve/lxc/302/status/stop");
        await waitTask(target, stop.body.data);
        const log = await raw(target, "GET", `/nodes/pve/tasks/${encodeURIComponent(stop.body.data)}/log`, { start: "0", limit: "50" });
        assert.deepStrictEqual(log.body.data.at(-1), { n: log.body.data.length, t: "TASK OK" });
    });

    it("a restore whose worker does not start leaves its config locked (create): a retry meets it, destroy refuses it", async () => {
        emulator.failForks({ type: "vzrestore", times: 1 });
        const failed = await raw(target, "POST", "/nodes/pve/lxc", { vmid: "304", ostemplate: target.archive, restore: "1", storage: "local-lvm" });
        assert.deepStrictEqual([failed.status, failed.reason], [500, "got no worker upid - start worker failed"]);
        assert.deepStrictEqual(emulator.guestConfig(304), { lock: "create" });
        const again = await raw(target, "POST", "/nodes/pve/lxc", { vmid: "304", ostemplate: target.archive, restore: "1", storage: "local-lvm" });
        assert.deepStrictEqual([again.status, again.reason], [500, "CT 304 already exists on node 'pve'"]);
        const destroy = await raw(target, "DELETE", "/nodes/pve/lxc/304");
        assert.deepStrictEqual([destroy.status, destroy.reason], [500, "CT is locked (create)"]);
    });

    it("the schema check saw a reply from every endpoint the emulator serves", () => {
        const seen = new Set([...checked.keys()].filter((key) => / 200$/.test(key)).map((key) => key.replace(/ 200$/, "")));
        assert.deepStrictEqual(SERVED.filter((endpoint) => !seen.has(endpoint)), []);
        console.log(`      schema-checked replies: ${[...checked.values()].reduce((a, b) => a + b, 0)}, of ${checked.size} kinds (method, endpoint, status): ${[...checked.keys()].sort().join("; ")}`);
    });
});

// The check itself: a checker that finds nothing would pass any emulator.
describe("Proxmox VE API schema check", () => {
    const config = SCHEMA.paths["/nodes/{node}/lxc/{vmid}/config"].GET.returns;
    const ok = (body: unknown, status = 200, reason = "OK"): PveReplySeen => ({ method: "GET", path: "/nodes/pve/tasks/UPID:x/status", status, reason, body });

    it("refuses a boolean sent as text", () => {
        assert.deepStrictEqual(valueProblems(config, { digest: "d", onboot: "1" }), ['data.onboot: "1" is not a boolean (the integer 0 or 1)']);
    });

    it("refuses an integer sent as text", () => {
        assert.deepStrictEqual(valueProblems(config, { digest: "d", memory: "2048" }), ['data.memory: "2048" is not an integer']);
    });

    it("refuses a value outside its enum", () => {
        assert.deepStrictEqual(valueProblems(config, { digest: "d", ostype: "windows" }), [`data.ostype: "windows" is not one of ${config.properties!.ostype.enum!.join(", ")}`]);
    });

    it("refuses a key a property string's format does not name", () => {
        assert.deepStrictEqual(valueProblems(config, { digest: "d", net0: "name=eth0,colour=red" }), ['data.net0: "colour=red" is not a key the format names (bridge, firewall, gw, gw6, host-managed, hwaddr, ip, ip6, link_down, mtu, name, rate, tag, trunks, type)']);
    });

    it("refuses a required property that is missing", () => {
        assert.deepStrictEqual(valueProblems(config, {}), ["data.digest: required, missing"]);
    });

    it("refuses \"no such task\" in the reason phrase without errors, and a message in the body", () => {
        const problems = replyProblems(SCHEMA, ok({ data: null, message: "no such task\n" }, 400, "no such task"));
        assert.deepStrictEqual(problems.map((p) => p.replace(/^.*\(400\): /, "")), ["error body has keys data, message; allowed: data, errors"]);
    });

    it("refuses a parameter error without its errors object", () => {
        const problems = replyProblems(SCHEMA, ok({ data: null }, 400, "Parameter verification failed."));
        assert.deepStrictEqual(problems.map((p) => p.replace(/^.*\(400\): /, "")), ["a parameter error names its parameters in errors, got undefined"]);
    });

    it("accepts a task status as the schema gives it", () => {
        const status = { upid: "UPID:x", node: "pve", pid: 1, pstart: 2, starttime: 3, type: "vzstart", id: "101", user: "root@pam", status: "stopped", exitstatus: "OK" };
        assert.deepStrictEqual(replyProblems(SCHEMA, ok({ data: status })), []);
    });
});
