/**
 * The committed stacks as the program builds them: each passes the offline
 * plan (config, policy pack, cost), two previews share no physical name and
 * carry their PR's tags, and prod protects what holds state.
 */
import * as assert from "assert";
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import { MockCloud, RecordedResource, unwrapSecrets } from "../../tooling/mockCloud";
import { stackId } from "../../lib/naming";
import { committedStacks, PROJECT, REPO_ROOT, runStackProgram } from "../support/program";

const run = promisify(execFile);

/** Names that must be unique in one Linode account (labels, bucket names, DNS record names). */
function physicalNames(resources: RecordedResource[]): string[] {
    return resources.filter((r) => r.custom).flatMap((r) => {
        const inputs = unwrapSecrets(r.inputs) as Record<string, unknown>;
        if (r.type.startsWith("linode:") && typeof inputs.label === "string") return [inputs.label];
        if (r.type === "linode:index/domainRecord:DomainRecord") return [`${inputs.domainId}/${inputs.name}`];
        if (r.type === "aws:s3/bucket:Bucket") return [String(inputs.bucket)];
        return [];
    });
}

const taggable = (cloud: MockCloud) => [...cloud.ofType("linode:index/instance:Instance"), ...cloud.ofType("linode:index/firewall:Firewall")];

describe("committed stacks", function () {
    this.timeout(120_000);

    describe("two previews", () => {
        let pr1: MockCloud;
        let pr2: MockCloud;
        before(async () => {
            pr1 = (await runStackProgram("pr-1")).cloud;
            pr2 = (await runStackProgram("pr-2")).cloud;
        });

        it("share no physical name", () => {
            const [a, b] = [physicalNames(pr1.resources), physicalNames(pr2.resources)];
            assert.ok(a.length >= 8, `expected labels for instances, firewalls, key and bucket; got ${a.join(", ")}`);
            assert.deepStrictEqual(a.filter((name) => b.includes(name)), []);
        });

        it("tag every instance and firewall with their stack and PR", () => {
            for (const [cloud, pr] of [[pr1, 1], [pr2, 2]] as const) {
                for (const r of taggable(cloud)) {
                    const tags = unwrapSecrets(r.inputs.tags) as string[];
                    for (const tag of ["meshstack-preview", `meshstack-pr-${pr}`, `meshstack-stack-pr-${pr}`]) assert.ok(tags.includes(tag), `${r.name}: ${tags}`);
                }
            }
        });

        it("name their buckets after the stack and its per-pair id, since Linode buckets take no tags (the sweeper proves them by it)", () => {
            const labels = pr1.ofType("linode:index/objectStorageBucket:ObjectStorageBucket").map((b) => String(unwrapSecrets(b.inputs.label))).sort();
            assert.strictEqual(labels.length, 2, "the bootstrap bucket and the runtime bucket");
            const id = stackId({ project: PROJECT, stack: "pr-1" });
            for (const label of labels) assert.match(label, new RegExp(`^meshstack-pr-1-${id}-rendezvous-(rt-)?[a-z0-9]{6}$`));
        });
    });

    it("prod protects both buckets and every NATS node, not the replaceable WireGuard hub", async () => {
        const { cloud } = await runStackProgram("prod");
        const protectedNames = cloud.resources.filter((r) => r.options?.protect).map((r) => r.name).sort();
        assert.deepStrictEqual(protectedNames, ["nats-0-instance", "nats-1-instance", "nats-2-instance", "rendezvous-bucket", "rendezvous-runtime-bucket"]);
    });

    it("prod protects its control-plane KV bucket too", async () => {
        const { cloud } = await runStackProgram("prod", { "meshstack:natsKvBucket": "control", "meshstack:natsClientCidrs": JSON.stringify(["198.51.100.7/32"]) });
        assert.strictEqual(cloud.byName("nats-kv").options?.protect, true);
    });

    it("dev protects nothing, so it can be torn down freely", async () => {
        const { cloud } = await runStackProgram("dev");
        assert.deepStrictEqual(cloud.resources.filter((r) => r.options?.protect).map((r) => r.name), []);
    });

    for (const stack of committedStacks().filter((s) => s !== "dev")) {
        it(`stack ${stack} passes the offline plan, with its cost and no policy violation`, async () => {
            const { stdout } = await run("npm", ["run", "-s", "plan", "--", "--stack", stack], { cwd: REPO_ROOT });
            assert.match(stdout, new RegExp(`offline plan of stack ${stack}: \\d+ resources`));
            assert.match(stdout, /\| \*\*total\*\* \| \| \| \*\*\$\d+\.\d\d\*\* \|/);
            const out = path.join(REPO_ROOT, "out", stack);
            const cost = JSON.parse(fs.readFileSync(path.join(out, "cost.json"), "utf8"));
            assert.ok(cost.totalMonthly > 0 && cost.unpriced.length === 0, JSON.stringify(cost));
            assert.deepStrictEqual(JSON.parse(fs.readFileSync(path.join(out, "policy.json"), "utf8")).violations, []);
            const packConfig = JSON.parse(fs.readFileSync(path.join(out, "policy-config.json"), "utf8"));
            assert.deepStrictEqual(packConfig["meshstack-no-world-inbound"].wireguardPorts, [51820]);
            const tags = JSON.parse(fs.readFileSync(path.join(out, "stack-tags.json"), "utf8"));
            assert.strictEqual(tags["meshstack:pr"], stack === "pr-1" ? "1" : undefined);
        });
    }
});
