import * as assert from "assert";
import * as path from "path";
import { formatConfigErrors, parseStackConfig, qualify } from "../../lib/config";
import fc from "fast-check";
import {
    environmentOf, linodeTags, prNumberOfTag, PREVIEW_TAG, prTag, resourceTags, stackFileName, stackNameProblem, stackTags,
} from "../../lib/environments";
import { cliStackConfigOf } from "../../tooling/cliConfig";

const REPO_ROOT = path.resolve(__dirname, "../..");

function parseFor(stack: string, values: Record<string, string>) {
    const qualified = Object.fromEntries(Object.entries(values).map(([k, v]) => [qualify(k), v]));
    return parseStackConfig({ values: qualified, secretKeys: new Set() }, stack);
}

function onlyError(stack: string, values: Record<string, string>) {
    const result = parseFor(stack, values);
    assert.ok(!result.ok, "expected the config to be refused");
    assert.strictEqual(result.errors.length, 1, formatConfigErrors(result.errors));
    return result.errors[0];
}

function committed(stack: string) {
    const cli = cliStackConfigOf(REPO_ROOT, stack);
    if (!cli.ok) throw new Error(cli.errors.join("\n"));
    return parseStackConfig(cli.raw, stack);
}

describe("environments", () => {
    describe("from the stack name", () => {
        it("knows dev, staging and prod, and protects state only in prod", () => {
            assert.deepStrictEqual(["dev", "staging", "prod"].map((s) => [environmentOf(s).kind, environmentOf(s).protectState]),
                [["dev", false], ["staging", false], ["prod", true]]);
        });
        it("reads pr-<n> as the preview of pull request n", () => {
            assert.deepStrictEqual(environmentOf("pr-42"), { stack: "pr-42", kind: "preview", prNumber: 42, protectState: false });
        });
        it("treats anything else, pr-0 and pr-x included, as a custom stack without a PR", () => {
            for (const stack of ["alice", "pr-0", "pr-x", "production", "pr-12a"]) {
                assert.strictEqual(environmentOf(stack).kind, "custom", stack);
                assert.strictEqual(environmentOf(stack).prNumber, undefined, stack);
            }
        });
        it("reads the preview template for a pr-<n> stack without a file of its own", () => {
            assert.strictEqual(stackFileName("pr-7", () => false), "Pulumi.pr.yaml");
            assert.strictEqual(stackFileName("pr-7", (f) => f === "Pulumi.pr-7.yaml"), "Pulumi.pr-7.yaml");
            assert.strictEqual(stackFileName("dev", () => false), "Pulumi.dev.yaml");
        });
    });

    describe("tags", () => {
        it("tag a preview's resources with project, environment, stack and PR", () => {
            assert.deepStrictEqual(resourceTags("meshstack", environmentOf("pr-12")),
                ["meshstack", "meshstack-env-preview", "meshstack-stack-pr-12", PREVIEW_TAG, "meshstack-pr-12"]);
            assert.strictEqual(prNumberOfTag(prTag(12)), 12);
        });
        it("carry no preview tags outside previews", () => {
            assert.deepStrictEqual(resourceTags("meshstack", environmentOf("prod")), ["meshstack", "meshstack-env-prod", "meshstack-stack-prod"]);
        });
        it("fit Linode's 3 to 50 characters", () => {
            for (const tag of resourceTags("meshstack", environmentOf("x".repeat(80)))) assert.ok(tag.length >= 3 && tag.length <= 50, tag);
            assert.deepStrictEqual(linodeTags(["ab", "nats", "nats"]), ["nats"]);
        });
        it("give the stack tags the workflow sets", () => {
            assert.deepStrictEqual(stackTags(environmentOf("pr-3")), { "meshstack:environment": "preview", "meshstack:pr": "3" });
            assert.deepStrictEqual(stackTags(environmentOf("staging")), { "meshstack:environment": "staging" });
        });
    });

    describe("prod refuses unsafe settings, naming the key and why", () => {
        it("refuses a single NATS node", () => {
            const result = parseFor("prod", { natsNodeCount: "1", natsKvReplicas: "1" });
            assert.ok(!result.ok);
            const error = result.errors.find((e) => e.key === "meshstack:natsNodeCount");
            assert.strictEqual(error?.value, "1");
            assert.match(error!.message, /refused in prod: .*no RAFT majority/);
        });
        it("refuses KV replicas below 3", () => {
            const error = onlyError("prod", { natsKvReplicas: "1" });
            assert.strictEqual(error.key, "meshstack:natsKvReplicas");
            assert.match(error.message, /refused in prod: a KV bucket below R3 loses its data/);
        });
        it("refuses break-glass SSH open to the whole internet, IPv4 or IPv6", () => {
            for (const cidr of ["0.0.0.0/0", "::/0"]) {
                const error = onlyError("prod", { natsKvReplicas: "3", breakGlassSshCidrs: JSON.stringify(["203.0.113.7/32", cidr]) });
                assert.strictEqual(error.key, "meshstack:breakGlassSshCidrs");
                assert.match(error.message, new RegExp(`refused in prod: ${cidr.replace(/[./:]/g, "\\$&")} opens tcp/22 of every node to the whole internet`));
            }
        });
        it("reports every refusal at once", () => {
            const result = parseFor("prod", { natsNodeCount: "1", breakGlassSshCidrs: '["0.0.0.0/0"]' });
            assert.ok(!result.ok);
            assert.deepStrictEqual(result.errors.map((e) => e.key).sort(),
                ["meshstack:breakGlassSshCidrs", "meshstack:natsKvReplicas", "meshstack:natsNodeCount"]);
        });
        it("allows the same settings in dev", () => {
            assert.ok(parseFor("dev", { natsNodeCount: "1", breakGlassSshCidrs: '["0.0.0.0/0"]' }).ok);
        });
    });

    it("previews refuse a DNS domain (every preview would publish the same names)", () => {
        assert.strictEqual(onlyError("pr-5", { natsDnsDomain: "example.net" }).key, "meshstack:natsDnsDomain");
    });

    for (const stack of ["dev", "staging", "prod", "pr"]) {
        it(`accepts the committed Pulumi.${stack}.yaml for its own environment`, () => {
            const result = committed(stack);
            assert.ok(result.ok, result.ok ? "" : formatConfigErrors(result.errors));
        });
    }

    describe("a stack name that reads as an environment but is not one", () => {
        it("is refused, naming the environment it reads as (Prod, DEV, Staging, PR-12, pr-012, PR)", () => {
            const meant = ["Prod", "DEV", "Staging", "PR-12", "pr-012", "PR"].map((stack) => /reads as (\S+) but/.exec(stackNameProblem(stack)?.message ?? "")?.[1]);
            assert.deepStrictEqual(meant, ["prod", "dev", "staging", "pr-12", "pr-12", "pr"]);
        });

        it("leaves the environments themselves and names that read as none alone", () => {
            for (const stack of ["dev", "staging", "prod", "pr", "pr-12", "alice", "Production", "pr-0", "pr-12a", "qa"]) assert.strictEqual(stackNameProblem(stack), undefined, stack);
        });

        it("is refused in the config report for every case variant of prod, with prod's rules unapplied", () => {
            const variants = fc.array(fc.boolean(), { minLength: 4, maxLength: 4 })
                .map((upper) => [..."prod"].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join(""))
                .filter((name) => name !== "prod");
            fc.assert(fc.property(variants, (stack) => {
                const error = onlyError(stack, {});
                assert.deepStrictEqual([error.key, error.value], ["stack name", stack]);
                assert.match(error.message, /reads as prod but is not prod.*allowed: exactly prod/);
            }));
        });
    });

    it("keeps prod and staging apart from dev: own subnets, R3, larger NATS nodes", () => {
        const [dev, staging, prod] = ["dev", "staging", "prod"].map((s) => {
            const r = committed(s);
            assert.ok(r.ok);
            return r.value;
        });
        assert.strictEqual(new Set([dev.wgCache.address, staging.wgCache.address, prod.wgCache.address]).size, 3);
        assert.deepStrictEqual([dev.nats.kvReplicas, staging.nats.kvReplicas, prod.nats.kvReplicas], [1, 3, 3]);
        assert.ok(prod.bootstrap.urlExpirySeconds < dev.bootstrap.urlExpirySeconds);
    });
});
