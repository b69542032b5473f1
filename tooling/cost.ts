/**
 * The monthly cost of a stack from what its program registers, priced with
 * the committed table in tooling/linodePrices.ts. No Pulumi tool prices Linode,
 * so the offline plan does: a pull request that doubles a preview's cost
 * says so in its comment.
 */
import { LINODE_PRICES } from "./linodePrices";

/** The part of a registered resource pricing needs: its type and plain inputs. */
export interface PricedResource {
    type: string;
    inputs: Record<string, unknown>;
}

export interface CostLine {
    item: string;
    count: number;
    unitMonthly: number;
    monthly: number;
}

export interface CostReport {
    stack: string;
    currency: string;
    pricesAsOf: string;
    source: string;
    lines: CostLine[];
    totalMonthly: number;
    /** Instance types the table has no price for: the total leaves them out. */
    unpriced: string[];
    notes: string[];
}

const INSTANCE = "linode:index/instance:Instance";
const LINODE_BUCKET = "linode:index/objectStorageBucket:ObjectStorageBucket";

function cents(value: number): number {
    return Math.round(value * 100) / 100;
}

export function stackCost(stack: string, resources: PricedResource[], prices = LINODE_PRICES): CostReport {
    const byType = new Map<string, number>();
    const regions = new Set<string>();
    const storageRegions = new Set<string>();
    for (const r of resources) {
        if (r.type === INSTANCE) {
            const type = String(r.inputs.type);
            byType.set(type, (byType.get(type) ?? 0) + 1);
            regions.add(String(r.inputs.region));
        } else if (r.type === LINODE_BUCKET) {
            storageRegions.add(String(r.inputs.region));
            regions.add(String(r.inputs.region));
        }
    }
    const lines: CostLine[] = [];
    const unpriced: string[] = [];
    for (const [type, count] of [...byType].sort(([a], [b]) => a.localeCompare(b))) {
        const unit = prices.instanceMonthly[type];
        if (unit === undefined) {
            unpriced.push(type);
            continue;
        }
        lines.push({ item: `instance ${type}`, count, unitMonthly: unit, monthly: cents(unit * count) });
    }
    if (storageRegions.size) {
        lines.push({
            item: "object storage (per region)", count: storageRegions.size,
            unitMonthly: prices.objectStorageMonthly, monthly: cents(prices.objectStorageMonthly * storageRegions.size),
        });
    }
    const notes = ["firewalls, keys and DNS records are free; transfer beyond each plan's pool and storage beyond 250 GB are not counted"];
    if (storageRegions.size) notes.push("an account already paying for Object Storage in that region pays nothing more for the bucket");
    const overridden = [...regions].filter((r) => (prices.regionsWithOverrides as readonly string[]).includes(r));
    if (overridden.length) notes.push(`${overridden.join(", ")} ${overridden.length === 1 ? "has" : "have"} region prices above the base prices shown`);
    if (unpriced.length) notes.push(`no price in tooling/linodePrices.ts for ${unpriced.join(", ")}: the total leaves them out`);
    return {
        stack, currency: prices.currency, pricesAsOf: prices.asOf, source: prices.source,
        lines, totalMonthly: cents(lines.reduce((sum, l) => sum + l.monthly, 0)), unpriced, notes,
    };
}

/** A Markdown table: the plan prints it and the PR comment embeds it. */
export function formatCostTable(report: CostReport): string {
    const money = (v: number) => `$${v.toFixed(2)}`;
    const rows = report.lines.map((l) => `| ${l.item} | ${l.count} | ${money(l.unitMonthly)} | ${money(l.monthly)} |`);
    return [
        `Monthly cost of stack ${report.stack} (${report.currency}, Linode list prices of ${report.pricesAsOf}):`,
        "",
        "| item | count | unit/month | month |",
        "|---|---:|---:|---:|",
        ...rows,
        `| **total** | | | **${money(report.totalMonthly)}** |`,
        "",
        ...report.notes.map((n) => `- ${n}`),
    ].join("\n") + "\n";
}

/** One line comparing a stack's cost on the base branch with this change's, loud when it at least doubles. */
export function formatCostChange(base: CostReport, head: CostReport): string {
    const money = (v: number) => `$${v.toFixed(2)}`;
    if (base.totalMonthly === head.totalMonthly) return `Monthly cost unchanged from the base branch: ${money(head.totalMonthly)}.`;
    const ratio = base.totalMonthly > 0 ? head.totalMonthly / base.totalMonthly : Infinity;
    const change = base.totalMonthly > 0 ? ` (${ratio >= 1 ? "+" : ""}${Math.round((ratio - 1) * 100)}%)` : "";
    const line = `Monthly cost ${money(base.totalMonthly)} on the base branch, ${money(head.totalMonthly)} with this change${change}.`;
    return ratio >= 2 ? `**Warning: this change at least doubles the monthly cost.** ${line}` : line;
}
