/**
 * Leaving the JetStream meta group when an answer is lost. CI met it on real
 * nats-server (the loopback 5 -> 3 test): the meta leader removed nats-3, its
 * reply timed out in the election that followed, and the retry was told
 * "not a member". The fake connection below replays those answers: the
 * client library's own errors, as its request() throws them, and the reply
 * (`error.err_code` 10044) whose shape that test reads from the server.
 */
import * as assert from "assert";
import { NoRespondersError, RequestError, TimeoutError } from "@nats-io/nats-core";
import { leaveMetaGroup } from "../../providers/natsScaleDown";
import { captureConsoleLog } from "../support/consoleLog";

const MEMBER = { name: "nats-3", node: "meshtest-3" };
/** What request() throws when no server listens on the subject (the meta leader is being elected). */
const NO_RESPONDERS = new RequestError("no responders: '$JS.API.SERVER.REMOVE'", { cause: new NoRespondersError("$JS.API.SERVER.REMOVE") });
const NOT_A_MEMBER = { type: "io.nats.jetstream.api.v1.meta_server_remove_response", error: { code: 400, err_code: 10044, description: "peer not a member" } };

/** A connection whose requests meet `answers` in turn: an Error is thrown, anything else is the reply's JSON. */
function connectionAnswering(...answers: (Error | object)[]) {
    const subjects: string[] = [];
    const bodies: unknown[] = [];
    return {
        subjects,
        bodies,
        async request(subject: string, body: string) {
            subjects.push(subject);
            bodies.push(JSON.parse(body));
            const answer = answers.shift();
            if (answer instanceof Error) throw answer;
            return { string: () => JSON.stringify(answer) };
        },
    };
}

describe("leaveMetaGroup: a removal during an election, or whose answer was lost", function () {
    this.timeout(20_000);
    const logged = captureConsoleLog();

    it("after timed-out requests, 'not a member' is this removal's own success; each retry comes after the poll interval, not at the deadline", async () => {
        const nc = connectionAnswering(new TimeoutError(), new TimeoutError(), NOT_A_MEMBER);
        // A deadline far past the test's timeout: a retry that waited for it would fail the test.
        await leaveMetaGroup(nc, MEMBER, Date.now() + 120_000);
        const lines = logged.lines;
        assert.deepStrictEqual(nc.subjects, ["$JS.API.SERVER.REMOVE", "$JS.API.SERVER.REMOVE", "$JS.API.SERVER.REMOVE"]);
        assert.deepStrictEqual(nc.bodies, [{ peer: "meshtest-3" }, { peer: "meshtest-3" }, { peer: "meshtest-3" }], "the server is named by its server_name");
        // The second attempt's countdown depends on how long the pause took on this host: any 11x s.
        assert.deepStrictEqual(lines.map((line, i) => (i === 1 ? line.replace(/giving up in 11\ds$/, "giving up in 11Xs") : line)), [
            "[nats-scale-down] nats-3 (meshtest-3): attempt 1: the meta group is not ready to remove it yet: timeout; giving up in 120s",
            "[nats-scale-down] nats-3 (meshtest-3): attempt 2: the meta group is not ready to remove it yet: timeout; giving up in 11Xs",
            "[nats-scale-down] nats-3 (meshtest-3): attempt 2's answer was lost; the meta group no longer holds it",
            "[nats-scale-down] nats-3 (meshtest-3): removed from the JetStream meta group",
        ]);
    });

    it("on a first request, 'not a member' means an earlier up removed it", async () => {
        await leaveMetaGroup(connectionAnswering(NOT_A_MEMBER), MEMBER, Date.now() + 10_000);
        const lines = logged.lines;
        assert.deepStrictEqual(lines, ["[nats-scale-down] nats-3 (meshtest-3): not in the JetStream meta group (removed before)"]);
    });

    it("after 'no responders' (the request reached no leader), 'not a member' still means an earlier up", async () => {
        await leaveMetaGroup(connectionAnswering(NO_RESPONDERS, NOT_A_MEMBER), MEMBER, Date.now() + 10_000);
        const lines = logged.lines;
        assert.deepStrictEqual(lines.at(-1), "[nats-scale-down] nats-3 (meshtest-3): not in the JetStream meta group (removed before)");
    });

    it("while the meta group elects a leader ('temporarily unavailable'), it asks again", async () => {
        const electing = { error: { code: 503, err_code: 10008, description: "JetStream system temporarily unavailable" } };
        const nc = connectionAnswering(electing, { success: true });
        await leaveMetaGroup(nc, MEMBER, Date.now() + 10_000);
        const lines = logged.lines;
        assert.strictEqual(nc.subjects.length, 2);
        assert.deepStrictEqual(lines.at(-1), "[nats-scale-down] nats-3 (meshtest-3): removed from the JetStream meta group");
    });

    it("a timed-out request past the deadline fails naming the member, and says its instance was kept", async () => {
        await assert.rejects(leaveMetaGroup(connectionAnswering(new TimeoutError()), MEMBER, Date.now()),
            /^Error: nats-3 \(meshtest-3\) was evacuated but could not be removed from the JetStream meta group: timeout\. Its instance has not been deleted; run pulumi up again$/);
    });
});
