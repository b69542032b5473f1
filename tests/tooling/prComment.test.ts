import * as assert from "assert";
import { stackCost } from "../../tooling/cost";
import { commentMarker, markedCommentId, renderPreviewComment } from "../../tooling/prComment";

const outputs = {
    bucketName: "meshstack-pr-7-rendezvous-abc123",
    bucketEndpoint: "https://us-east-1.linodeobjects.com",
    wgCachePublicKey: "bafP1cd2WTxvmDHmsedbNSmAP5UIh4Z/16UVwARNOGw=",
    wgCacheEndpoint: "203.0.113.12:51820",
    wgCachePeerSection: "[Peer]\nPublicKey = bafP1cd2WTxvmDHmsedbNSmAP5UIh4Z/16UVwARNOGw=\nEndpoint = 203.0.113.12:51820\nAllowedIPs = 10.44.0.0/24\n",
    natsClientUrls: ["tls://203.0.113.86:4222", "tls://203.0.113.15:4222"],
    natsServiceName: "meshstack-preview.nats.internal",
    natsClientCaCertPem: "[secret]",
    bootstrapDelivery: { "wg-cache": { method: "inline", rawBytes: 6362, limitBytes: 16384 }, "meshstack-preview-0": { method: "gzip", rawBytes: 20000, gzipBytes: 7000, limitBytes: 16384 } },
};

describe("preview deployment PR comment", () => {
    const cost = stackCost("pr-7", [{ type: "linode:index/instance:Instance", inputs: { type: "g6-nanode-1", region: "us-east" } }]);
    const body = renderPreviewComment({ stack: "pr-7", prNumber: 7, commit: "0123456789abcdef", outputs, cost, runUrl: "https://example.invalid/run/1" });

    it("carries the marker a rerun finds, and the stack and commit", () => {
        assert.ok(body.startsWith(commentMarker("pr-7")));
        assert.match(body, /Preview deployment `pr-7` \(PR #7\) at 0123456789ab/);
    });

    it("shows the endpoints, the peer section and the delivery table", () => {
        assert.match(body, /\| WireGuard endpoint \| `203\.0\.113\.12:51820` \|/);
        assert.match(body, /```ini\n\[Peer\]\nPublicKey = bafP1/);
        assert.match(body, /`tls:\/\/203\.0\.113\.86:4222` `tls:\/\/203\.0\.113\.15:4222`/);
        assert.match(body, /\| meshstack-preview-0 \| gzip \| 20000 \| 7000 \| 16384 \|/);
    });

    it("includes the monthly cost", () => {
        assert.match(body, /\| instance g6-nanode-1 \| 1 \| \$5\.00 \| \$5\.00 \|/);
    });

    it("says so when a change doubles the cost", () => {
        const doubled = stackCost("pr-7", [1, 2].map(() => ({ type: "linode:index/instance:Instance", inputs: { type: "g6-nanode-1", region: "us-east" } })));
        const text = renderPreviewComment({ stack: "pr-7", prNumber: 7, commit: "x", outputs, cost: doubled, baseCost: cost });
        assert.match(text, /\*\*Warning: this change at least doubles the monthly cost\.\*\* Monthly cost \$5\.00 on the base branch, \$10\.00 with this change \(\+100%\)/);
    });

    it("never prints key material, even if an output carries some", () => {
        const leaky = renderPreviewComment({ stack: "pr-7", prNumber: 7, commit: "x", outputs: { ...outputs, wgCachePeerSection: "[Interface]\nPrivateKey = abc\n" } });
        assert.ok(!leaky.includes("PrivateKey = abc"));
        assert.match(leaky, /withheld: looks like key material/);
    });

    it("edits the comment that carries the marker instead of posting another", () => {
        const comments = [{ id: 1, body: "LGTM" }, { id: 2, body: `${commentMarker("pr-7")}\nold` }, { id: 3, body: null }];
        assert.strictEqual(markedCommentId(comments, "pr-7"), 2);
        assert.strictEqual(markedCommentId(comments, "pr-8"), undefined);
    });
});
