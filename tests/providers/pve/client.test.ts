/**
 * The Proxmox VE API client's pure parts, against replies shaped as Proxmox
 * VE's published API schema says (tests/contracts/pve-api-lxc.json).
 */
import * as assert from "assert";
import { isUnknownTask } from "../../../providers/pve/client";

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
