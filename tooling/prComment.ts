/**
 * The one PR comment a preview deployment keeps up to date: endpoints, the
 * WireGuard peer section (public key and endpoint only), the bootstrap
 * delivery table and the monthly cost. Pure: the workflow's step
 * (scripts/prComment.ts) feeds it `pulumi stack output --json` and the
 * offline plan's cost.json, and edits the comment carrying the marker.
 */
import { CostReport, formatCostChange, formatCostTable } from "./cost";

export interface PreviewCommentInput {
    stack: string;
    prNumber: number;
    commit: string;
    /** `pulumi stack output --json` (secrets print as "[secret]"). */
    outputs: Record<string, unknown>;
    cost?: CostReport;
    /** The same stack's cost on the PR's base branch, when it has a cost report. */
    baseCost?: CostReport;
    /** Where the full `pulumi up` log is (the workflow run). */
    runUrl?: string;
}

/** Hidden in the comment body; finding it is how a rerun edits instead of posting again. */
export function commentMarker(stack: string): string {
    return `<!-- meshstack-preview-deployment:${stack} -->`;
}

const PRIVATE_MATERIAL = /PRIVATE KEY|PrivateKey\s*=|X-Amz-Signature=/;

function shown(value: unknown): string {
    if (value === undefined || value === null) return "(none)";
    if (value === "[secret]") return "(secret)";
    const text = typeof value === "string" ? value : JSON.stringify(value);
    // Outputs that matter are public by design; anything that looks like key material never reaches a comment.
    return PRIVATE_MATERIAL.test(text) ? "(withheld: looks like key material)" : text;
}

interface Delivery {
    method?: string;
    rawBytes?: number;
    gzipBytes?: number;
    limitBytes?: number;
}

export function renderPreviewComment(input: PreviewCommentInput): string {
    const o = input.outputs;
    const urls = Array.isArray(o.natsClientUrls) ? (o.natsClientUrls as unknown[]).map(shown) : [shown(o.natsClientUrls)];
    const peer = shown(o.wgCachePeerSection);
    const delivery = (o.bootstrapDelivery && typeof o.bootstrapDelivery === "object" ? o.bootstrapDelivery : {}) as Record<string, Delivery>;
    const lines = [
        commentMarker(input.stack),
        `### Preview deployment \`${input.stack}\` (PR #${input.prNumber}) at ${input.commit.slice(0, 12)}`,
        "",
        "| output | value |",
        "|---|---|",
        `| bucket | \`${shown(o.bucketName)}\` at ${shown(o.bucketEndpoint)} |`,
        `| WireGuard endpoint | \`${shown(o.wgCacheEndpoint)}\` |`,
        `| WireGuard public key | \`${shown(o.wgCachePublicKey)}\` |`,
        `| NATS client URLs | ${urls.map((u) => `\`${u}\``).join(" ")} |`,
        `| NATS TLS server name | \`${shown(o.natsServiceName)}\` |`,
        "",
        "WireGuard peer section for your wg-quick config:",
        "",
        "```ini",
        peer.trimEnd(),
        "```",
        "",
        "| node | delivery | raw bytes | gzip bytes | limit |",
        "|---|---|---:|---:|---:|",
        ...Object.entries(delivery).map(([node, d]) => `| ${node} | ${shown(d.method)} | ${d.rawBytes ?? ""} | ${d.gzipBytes ?? ""} | ${d.limitBytes ?? ""} |`),
        "",
    ];
    if (input.cost) lines.push(formatCostTable(input.cost));
    if (input.cost && input.baseCost) lines.push(formatCostChange(input.baseCost, input.cost), "");
    if (input.runUrl) lines.push(`Full \`pulumi up\` log: ${input.runUrl}`);
    lines.push("", "_This comment is edited on every push; the stack is destroyed and removed when the PR closes._");
    return lines.join("\n") + "\n";
}

/** The comment to edit: the first one carrying the marker. */
export function markedCommentId(comments: { id: number; body?: string | null }[], stack: string): number | undefined {
    return comments.find((c) => (c.body ?? "").includes(commentMarker(stack)))?.id;
}
