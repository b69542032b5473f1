/**
 * The Proxmox VE API client: its pure parts against replies shaped as
 * Proxmox VE's published API schema says (tests/contracts/pve-api-lxc.json),
 * and its calls against the Proxmox VE API emulator (tests/support/pve/).
 */
import * as assert from "assert";
import {
    backoffMs, describeCall, isMissing, isTransient, isUnknownTask, normalizedFingerprint, PveCaller, pveCall, PveConnection, pveFailure, PveFailure,
    readEnvelope, replyDetail, requestLine, RetryPolicy,
} from "../../../providers/pve/client";
import { PveTarget, startPveEmulator } from "../../support/pve/target";
import { captureConsoleLog } from "../../support/consoleLog";

const NO_JITTER: RetryPolicy = { attempts: 3, initialDelayMs: 100, multiplier: 2, maxDelayMs: 1_000, jitter: 0 };

describe("PVE client: reading replies", () => {
    describe("isUnknownTask", () => {
        it("recognises the 400 whose errors.upid says no such task", () => {
            assert.strictEqual(isUnknownTask(400, { upid: "no such task" }), true);
        });

        it("does not take the words in another parameter's error for an unknown task", () => {
            assert.strictEqual(isUnknownTask(400, { node: "no such task" }), false);
        });

        it("does not take an unparsable UPID for a task not known yet", () => {
            assert.strictEqual(isUnknownTask(400, { upid: "unable to parse worker upid" }), false);
        });

        it("does not take another status with the same words for an unknown task", () => {
            assert.strictEqual(isUnknownTask(500, { upid: "no such task" }), false);
        });

        it("needs the errors object: a reply without one is not an unknown task", () => {
            assert.strictEqual(isUnknownTask(400, undefined), false);
        });
    });

    describe("isTransient", () => {
        it("takes a config lock timeout for transient", () => {
            assert.strictEqual(isTransient(500, "can't lock file '/run/lock/lxc/pve-config-101.lock' - got timeout"), true);
        });

        it("takes a worker that did not start for transient", () => {
            assert.strictEqual(isTransient(500, "got no worker upid - start worker failed"), true);
        });

        it("takes nothing below 500 for transient, whatever the words", () => {
            assert.strictEqual(isTransient(499, "got timeout"), false);
        });

        it("does not take another server error for transient", () => {
            assert.strictEqual(isTransient(500, "CT 101 already exists on node 'pve'"), false);
        });
    });

    describe("isMissing", () => {
        it("recognises the 500 that says the config file does not exist", () => {
            assert.strictEqual(isMissing(pveFailure("x", { status: 500, reason: "Configuration file 'nodes/pve/lxc/101.conf' does not exist" })), true);
        });

        it("does not take another status with the same words for a missing guest", () => {
            assert.strictEqual(isMissing(pveFailure("x", { status: 400, reason: "does not exist" })), false);
        });

        it("does not take another 500 for a missing guest", () => {
            assert.strictEqual(isMissing(pveFailure("x", { status: 500, reason: "CT is locked (create)" })), false);
        });

        it("does not take an error without a reply (a refused connection) for a missing guest", () => {
            assert.strictEqual(isMissing(new Error("connect ECONNREFUSED does not exist")), false);
        });
    });

    it("pveFailure keeps the reply's status, reason and errors, not transient unless said", () => {
        const f = pveFailure("m", { status: 400, reason: "Parameter verification failed.", errors: { vmid: "bad" } });
        assert.deepStrictEqual([f.message, f.pveStatus, f.pveReason, f.pveErrors, f.transient], ["m", 400, "Parameter verification failed.", { vmid: "bad" }, false]);
        assert.strictEqual(pveFailure("m", { transient: true }).transient, true);
    });

    it("compares fingerprints by their hex digits, in either case", () => {
        assert.strictEqual(normalizedFingerprint("ab:Cd:0f"), "ABCD0F");
    });

    describe("readEnvelope", () => {
        it("reads data from a success", () => {
            assert.deepStrictEqual(readEnvelope(200, "OK", '{"data":{"version":"9.0.3"}}'), { status: 200, reason: "OK", data: { version: "9.0.3" }, errors: undefined });
        });

        it("takes the message from the reason phrase, trimmed, and the per-parameter errors from the body", () => {
            const reply = readEnvelope(400, " Parameter verification failed. ", '{"data":null,"errors":{"vmid":"value must have a minimum value of 100"}}');
            assert.deepStrictEqual(reply, { status: 400, reason: "Parameter verification failed.", data: null, errors: { vmid: "value must have a minimum value of 100" } });
        });

        it("falls back to the body's message when the reason phrase is empty", () => {
            assert.strictEqual(readEnvelope(500, "", '{"message":" CT is locked (create) "}').reason, "CT is locked (create)");
            assert.strictEqual(readEnvelope(500, undefined, '{"data":null}').reason, "");
        });

        it("ignores errors that are not an object", () => {
            assert.strictEqual(readEnvelope(400, "x", '{"errors":"no"}').errors, undefined);
        });

        it("reads a body that is not JSON as an empty one, and a missing status as 0", () => {
            assert.deepStrictEqual(readEnvelope(undefined, "Bad Gateway", "<html>"), { status: 0, reason: "Bad Gateway", data: undefined, errors: undefined });
            assert.deepStrictEqual(readEnvelope(204, "No Content", ""), { status: 204, reason: "No Content", data: undefined, errors: undefined });
        });
    });

    describe("requestLine", () => {
        it("puts a GET's parameters in the query", () => {
            assert.deepStrictEqual(requestLine("GET", "/nodes/pve/tasks/U/log", { start: 0, limit: 5000 }), { path: "/api2/json/nodes/pve/tasks/U/log?start=0&limit=5000", form: "start=0&limit=5000", withBody: false });
        });

        it("puts a DELETE's parameters in the query", () => {
            assert.strictEqual(requestLine("DELETE", "/nodes/pve/lxc/101", { purge: 1 }).path, "/api2/json/nodes/pve/lxc/101?purge=1");
        });

        it("sends a POST's and a PUT's parameters as a form body, not in the path", () => {
            assert.deepStrictEqual(requestLine("POST", "/nodes/pve/lxc", { vmid: 101, hostname: "a b" }), { path: "/api2/json/nodes/pve/lxc", form: "vmid=101&hostname=a+b", withBody: true });
            assert.deepStrictEqual(requestLine("PUT", "/nodes/pve/lxc/101/config", { onboot: 1 }).withBody, true);
        });

        it("adds no ? without parameters", () => {
            assert.strictEqual(requestLine("GET", "/version", {}).path, "/api2/json/version");
        });
    });

    it("replyDetail quotes the status, the reason and each parameter's error, trimmed", () => {
        assert.strictEqual(replyDetail({ status: 500, reason: "got timeout", data: null }), "HTTP 500 got timeout");
        assert.strictEqual(
            replyDetail({ status: 400, reason: "Parameter verification failed.", data: null, errors: { vmid: " too small\n", storage: "missing" } }),
            "HTTP 400 Parameter verification failed. (vmid: too small; storage: missing)",
        );
    });

    it("describeCall names the caller, the operation and the full URL", () => {
        const caller = { conn: { endpoint: "https://pve:8006" }, name: "GoldenGuest web-1 (CT 101 on node pve)" } as PveCaller;
        assert.strictEqual(describeCall(caller, "read config", "GET", "/nodes/pve/lxc/101/config"), "GoldenGuest web-1 (CT 101 on node pve): read config: GET https://pve:8006/api2/json/nodes/pve/lxc/101/config");
    });

    describe("backoffMs", () => {
        it("grows by the multiplier from the initial delay", () => {
            assert.deepStrictEqual([0, 1, 2].map((attempt) => backoffMs(NO_JITTER, attempt)), [100, 200, 400]);
        });

        it("stops growing at the maximum", () => {
            assert.strictEqual(backoffMs(NO_JITTER, 10), 1_000);
        });

        it("scales each wait by a random factor within the jitter", () => {
            const random = Math.random;
            try {
                Math.random = () => 0;
                assert.strictEqual(backoffMs({ ...NO_JITTER, jitter: 0.5 }, 1), 100);
                Math.random = () => 0.75;
                assert.strictEqual(backoffMs({ ...NO_JITTER, jitter: 0.5 }, 1), 250);
            } finally {
                Math.random = random;
            }
        });
    });
});

describe("PVE client: calls against the emulator", () => {
    let target: PveTarget;
    const logged = captureConsoleLog();

    before(async () => {
        // A refused token is answered after 1 s: longer than a TLS handshake on a busy machine, so a deadline can fall after it.
        target = await startPveEmulator({ timeScale: 0.01, timings: { authFailureDelayMs: 100_000 } });
    });
    after(async () => {
        await target?.stop();
    });
    beforeEach(() => {
        target.emulator!.clearFaults();
    });

    function caller(conn: Partial<PveConnection> = {}, retry: Partial<RetryPolicy> = {}): PveCaller {
        return {
            conn: {
                endpoint: target.endpoint, node: target.node, tokenId: target.tokenId, tokenSecret: target.tokenSecret, caBundlePem: target.caBundlePem,
                tlsFingerprint: "", requestTimeoutMs: 5_000, ...conn,
            },
            retry: { attempts: 3, initialDelayMs: 1, multiplier: 2, maxDelayMs: 5, jitter: 0, ...retry },
            name: "Test (CT 1 on node pve)", shortName: "Test (CT 1)",
        };
    }

    function requestsTo(path: string): number {
        return target.emulator!.requests.filter((r) => r.path === path).length;
    }

    it("resolves with the reply's data, the token and CA bundle accepted", async () => {
        assert.deepStrictEqual(await pveCall(caller(), "read version", "GET", "/version"), { version: "9.0.3", release: "9.0", repoid: "025864202ebb6109" });
    });

    it("sends a POST's parameters as a form the server reads", async () => {
        await assert.rejects(pveCall(caller(), "restore", "POST", `/nodes/${target.node}/lxc`, { vmid: 7, ostemplate: target.archive, restore: 1 }), (err: PveFailure) => {
            assert.deepStrictEqual([err.pveStatus, err.pveErrors], [400, { vmid: "value must have a minimum value of 100" }]);
            return true;
        });
    });

    it("accepts the certificate by its pinned fingerprint, written in lower case, without a CA", async () => {
        const pinned = caller({ caBundlePem: "", tlsFingerprint: target.emulator!.fingerprint.toLowerCase() });
        assert.strictEqual((await pveCall(pinned, "read version", "GET", "/version")).version, "9.0.3");
    });

    it("refuses a certificate with another fingerprint before sending the request (and its token)", async () => {
        const before = target.emulator!.requests.length;
        const wrong = target.emulator!.fingerprint.replace(/^../, (pair) => (pair === "00" ? "11" : "00"));
        await assert.rejects(pveCall(caller({ caBundlePem: "", tlsFingerprint: wrong }), "read version", "GET", "/version"), (err: Error) => {
            assert.strictEqual(
                err.message,
                `Test (CT 1 on node pve): read version: GET ${target.endpoint}/api2/json/version failed: the server's certificate has SHA-256 fingerprint ${target.emulator!.fingerprint}, not the pinned ${wrong}`,
            );
            return true;
        });
        assert.strictEqual(target.emulator!.requests.length, before);
    });

    it("verifies the chain when nothing is pinned: a self-signed certificate without its CA is refused", async () => {
        await assert.rejects(pveCall(caller({ caBundlePem: "" }), "read version", "GET", "/version"), /failed: self.signed certificate/i);
    });

    it("says a refused connection, as one failure, not retried", async () => {
        await assert.rejects(pveCall(caller({ endpoint: "https://127.0.0.1:1" }), "read version", "GET", "/version"), (err: PveFailure) => {
            assert.match(err.message, /read version: GET https:\/\/127\.0\.0\.1:1\/api2\/json\/version failed: connect ECONNREFUSED/);
            assert.deepStrictEqual([err.pveStatus, err.transient], [undefined, false]);
            return true;
        });
    });

    it("gives up on a request past its deadline, saying so", async () => {
        target.emulator!.tokens.push({ id: "slow@pve!t", secret: "s", privileges: [] });
        await assert.rejects(pveCall(caller({ tokenId: "slow@pve!t", tokenSecret: "wrong", requestTimeoutMs: 500 }), "read version", "GET", "/version"), /failed: no answer within 500 ms$/);
    });

    it("says a refused token is wrong, expired or deleted", async () => {
        await assert.rejects(pveCall(caller({ tokenSecret: "wrong-secret" }), "read version", "GET", "/version"), (err: PveFailure) => {
            assert.match(err.message, /version failed: HTTP 401 invalid token value!: authorization failed: the API token meshstack@pve!deploy or its secret is wrong, expired or deleted$/);
            assert.strictEqual(err.pveStatus, 401);
            return true;
        });
    });

    it("says which privilege the token lacks and how to give it", async () => {
        target.emulator!.tokens.push({ id: "audit@pve!ro", secret: "audit-secret", privileges: ["VM.Audit"] });
        const path = `/nodes/${target.node}/vzdump/extractconfig`;
        await assert.rejects(pveCall(caller({ tokenId: "audit@pve!ro", tokenSecret: "audit-secret" }), "read archive", "GET", path, { volume: target.archive }), (err: PveFailure) => {
            assert.match(err.message, /HTTP 403 Permission check failed \(\/storage\/local, Datastore.Audit\): the API token audit@pve!ro lacks this privilege \(give its role the privilege, or untick privilege separation\)$/);
            assert.strictEqual(err.pveStatus, 403);
            return true;
        });
    });

    it("retries a transient failure with backoff and resolves when it clears", async () => {
        target.emulator!.failRequests({ path: /^\/nodes\/pve\/vzdump\/extractconfig$/, status: 500, message: "got timeout", times: 2 });
        const before = requestsTo("/nodes/pve/vzdump/extractconfig");
        const text = await pveCall(caller(), "read archive", "GET", "/nodes/pve/vzdump/extractconfig", { volume: target.archive });
        assert.match(text, /hostname: /);
        assert.strictEqual(requestsTo("/nodes/pve/vzdump/extractconfig") - before, 3);
        assert.match(logged.lines[0], /read archive: GET .*: HTTP 500 got timeout; transient, attempt 1 of 3, retrying in /);
        assert.match(logged.lines[1], /attempt 2 of 3/);
    });

    it("stops at the retry bound, saying how often and how long it tried", async () => {
        target.emulator!.failRequests({ path: /^\/version$/, status: 500, message: "got no worker upid - start worker failed", times: Infinity });
        const before = requestsTo("/version");
        await assert.rejects(pveCall(caller(), "read version", "GET", "/version"), (err: PveFailure) => {
            assert.match(err.message, /failed: HTTP 500 got no worker upid - start worker failed; still failing after 3 attempts over [0-9.]+s \(retry bound reached\)$/);
            assert.deepStrictEqual([err.pveStatus, err.pveReason, err.transient], [500, "got no worker upid - start worker failed", true]);
            return true;
        });
        assert.strictEqual(requestsTo("/version") - before, 3);
    });

    it("makes one try when the policy allows one", async () => {
        target.emulator!.failRequests({ path: /^\/version$/, status: 500, message: "got timeout", times: Infinity });
        const before = requestsTo("/version");
        await assert.rejects(pveCall(caller({}, { attempts: 1 }), "read version", "GET", "/version"), /still failing after 1 attempts/);
        assert.strictEqual(requestsTo("/version") - before, 1);
    });

    it("does not retry a worker that did not start when the caller handles it", async () => {
        target.emulator!.failRequests({ path: /^\/version$/, status: 500, message: "got no worker upid - start worker failed", times: Infinity });
        const before = requestsTo("/version");
        await assert.rejects(pveCall(caller(), "read version", "GET", "/version", {}, { retryNoWorker: false }), (err: PveFailure) => {
            assert.match(err.message, /failed: HTTP 500 got no worker upid - start worker failed$/);
            assert.strictEqual(err.transient, false);
            return true;
        });
        assert.strictEqual(requestsTo("/version") - before, 1);
    });

    it("still retries a lock timeout when the caller handles workers that did not start", async () => {
        target.emulator!.failRequests({ path: /^\/version$/, status: 500, message: "got timeout", times: 1 });
        assert.strictEqual((await pveCall(caller(), "read version", "GET", "/version", {}, { retryNoWorker: false })).version, "9.0.3");
    });

    it("throws any other failure at once, with the reply's status and reason", async () => {
        const path = `/nodes/${target.node}/lxc/100/config`;
        const before = requestsTo(path);
        await assert.rejects(pveCall(caller(), "read config", "GET", path), (err: PveFailure) => {
            assert.strictEqual(err.message, `Test (CT 1 on node pve): read config: GET ${target.endpoint}/api2/json${path} failed: HTTP 500 Configuration file 'nodes/pve/lxc/100.conf' does not exist`);
            assert.strictEqual(isMissing(err), true);
            return true;
        });
        assert.strictEqual(requestsTo(path) - before, 1);
    });
});
