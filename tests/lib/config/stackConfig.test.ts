/**
 * Bad stack files as a new user writes them (issue 20), checked the way the
 * offline plan checks them: Pulumi.yaml and the stack file's text through
 * the CLI's rules and lib/config/ together. Every class is refused in one
 * report whose line names the key, the value (private keys by fingerprint
 * only) and what is allowed; where a refusal would be guesswork, a warning;
 * and valid changes plan cleanly.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { pemBlock } from "../../../lib/config";
import { s3AgentCredentialsFromEnv, s3CredentialsFromEnv } from "../../../lib/pulumiConfig";
import { checkStack, policyConfigForStack } from "../../../policy/rules";
import { checkStackText, StackConfigCheck } from "../../../tooling/cliConfig";
import { policyResources, S3_CREDENTIAL_VARIABLES, withOfflineS3Credentials } from "../../../tooling/plan";
import { REPO_ROOT, runStackProgram } from "../../support/program";

const PROJECT = fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8");

/** Made up for these tests: the key body must never appear in a report. */
const SSH_PRIVATE_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQAAACDmadeUpForThisTestOnly";
const SSH_PRIVATE_KEY = pemBlock("OPENSSH PRIVATE KEY", SSH_PRIVATE_BODY);
const RSA_PRIVATE_BODY = "MIIEowIBAAKCAQEAmadeUpForThisTestOnlyAndNeverEchoed";
const RSA_PRIVATE_KEY = pemBlock("RSA PRIVATE KEY", RSA_PRIVATE_BODY);

/** 32 bytes shaped as `wg genkey` shapes every private key: first byte & 7 == 0, last byte's top bits 01. */
const CLAMPED_WG_KEY = Buffer.from([0x48, ...Array.from({ length: 30 }, (_, i) => (i * 37 + 11) % 256), 0x5a]).toString("base64");
/** The same bytes with the low bit of the first byte set: not clamped. */
const UNCLAMPED_WG_KEY = Buffer.from([0x49, ...Array.from({ length: 30 }, (_, i) => (i * 37 + 11) % 256), 0x5a]).toString("base64");

const PROXMOX_WITH_TEMPLATE = {
    "meshstack:proxmoxEndpoint": "https://pve.example.net:8006",
    "meshstack:proxmoxNode": "pve",
    "meshstack:proxmoxTokenId": "meshstack@pve!deploy",
    "meshstack:proxmoxTokenSecret": { secure: "v1:offline" },
    "meshstack:proxmoxStorage": "local-lvm",
    "meshstack:proxmoxGoldenTemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    "meshstack:proxmoxSshPrivateKey": { secure: "v1:offline" },
};

function check(config: Record<string, unknown>, stack = "dev"): StackConfigCheck {
    return checkStackText(PROJECT, YAML.stringify({ config }), stack);
}

function reportOf(result: StackConfigCheck): string {
    assert.ok(!result.ok, "expected the stack file to be refused");
    return result.report;
}

/** The report's line for a key: `  - <key> = "<value>": <message>`. */
function lineFor(report: string, key: string): string {
    const line = report.split("\n").find((l) => l.startsWith(`  - ${key} = `) || l.startsWith(`  - ${key}: `));
    assert.ok(line, `no line names ${key} in:\n${report}`);
    return line;
}

/** The value a report line shows, as written: the JSON string after `<key> = `. */
function valueShown(line: string, key: string): string {
    const quoted = /^"(?:[^"\\]|\\.)*"/.exec(line.slice(`  - ${key} = `.length));
    assert.ok(line.startsWith(`  - ${key} = `) && quoted, `the line shows no value: ${line}`);
    return JSON.parse(quoted[0]) as string;
}

interface BadStack {
    /** The class of mistake, as the issue lists it. */
    name: string;
    stack?: string;
    config: Record<string, unknown>;
    key: string;
    /** The value as the line shows it (a list as its JSON text), or a pattern where it is a fingerprint. */
    value: string | RegExp;
    /** What the message must say, besides `allowed: `. */
    says: RegExp;
    /** Secret text that must not appear anywhere in the report. */
    secret?: string;
}

const BAD_STACKS: BadStack[] = [
    {
        name: "an IPv4 CIDR with host bits in breakGlassSshCidrs",
        config: { "meshstack:breakGlassSshCidrs": ["10.0.0.1/8"] }, key: "meshstack:breakGlassSshCidrs", value: '["10.0.0.1/8"]',
        says: /item 0 \("10\.0\.0\.1\/8"\) has host bits set, so the firewall would open all of 10\.0\.0\.0\/8; write 10\.0\.0\.0\/8 for the whole network or 10\.0\.0\.1\/32 for the one address/,
    },
    {
        name: "an IPv6 CIDR with host bits in natsClientCidrs",
        config: { "meshstack:natsClientCidrs": ["2001:db8::1/32"] }, key: "meshstack:natsClientCidrs", value: '["2001:db8::1/32"]',
        says: /would open all of 2001:db8::\/32; write 2001:db8::\/32 for the whole network or 2001:db8::1\/128/,
    },
    {
        name: "a repeated CIDR, written two ways",
        config: { "meshstack:breakGlassSshCidrs": ["2001:db8::/48", "2001:0db8:0:0::/48"] }, key: "meshstack:breakGlassSshCidrs", value: '["2001:db8::/48","2001:0db8:0:0::/48"]',
        says: /item 1 \("2001:0db8:0:0::\/48"\) repeats item 0 \("2001:db8::\/48"\); each entry may appear once/,
    },
    {
        name: "a repeated image",
        config: { "meshstack:gzipUserDataImages": ["linode/debian12", "linode/debian12"] }, key: "meshstack:gzipUserDataImages", value: '["linode/debian12","linode/debian12"]',
        says: /item 1 \("linode\/debian12"\) repeats item 0; each entry may appear once/,
    },
    {
        name: "an OpenSSH private key in sshAuthorizedKeys",
        config: { "meshstack:sshAuthorizedKeys": [SSH_PRIVATE_KEY] }, key: "meshstack:sshAuthorizedKeys", value: /^\["\[private key sha256:[0-9a-f]{12}\]\\n"\]$/,
        says: /is a private key, not a public key: give the public key's line instead \(ssh-keygen -y -f <key file> prints it\)/, secret: SSH_PRIVATE_BODY,
    },
    {
        name: "an OpenSSH private key's body pasted without its armour in sshAuthorizedKeys",
        config: { "meshstack:sshAuthorizedKeys": [SSH_PRIVATE_BODY] }, key: "meshstack:sshAuthorizedKeys", value: /^\["\[private key sha256:[0-9a-f]{12}\]"\]$/,
        says: /is a private key, not a public key/, secret: SSH_PRIVATE_BODY,
    },
    {
        name: "a line that is no SSH key at all in sshAuthorizedKeys",
        config: { "meshstack:sshAuthorizedKeys": ["my laptop key"] }, key: "meshstack:sshAuthorizedKeys", value: '["my laptop key"]',
        says: /item 0 \("my laptop key"\) does not start with a key type \(ssh-ed25519, ssh-rsa, .*\); options such as from= or command= are not allowed/,
    },
    {
        name: "a PEM private key as the client CA certificate",
        config: { "meshstack:natsClientCaCertPem": RSA_PRIVATE_KEY, "meshstack:natsClientCaKeyPem": { secure: "v1:offline" } },
        key: "meshstack:natsClientCaCertPem", value: /^\[private key sha256:[0-9a-f]{12}\]\n$/,
        says: /is a private key, not a certificate: the CA's key goes in meshstack:natsClientCaKeyPem, set with --secret/, secret: RSA_PRIVATE_BODY,
    },
    {
        name: "a region that does not exist",
        config: { "meshstack:region": "us-eest" }, key: "meshstack:region", value: "us-eest",
        says: /is not a Linode region in the Linode catalog of \d{4}-\d\d-\d\d \(lib\/linodeCatalog\.json\); did you mean us-east or us-west\? allowed: one of .*us-east.*; or, for a region newer than the catalog, list us-eest in meshstack:linodeCatalogExtraIds/,
    },
    {
        name: "an object store region that does not exist (kind linode)",
        config: { "meshstack:objectStoreRegion": "us-eest" }, key: "meshstack:objectStoreRegion", value: "us-eest",
        says: /is not a Linode region in the Linode catalog/,
    },
    {
        name: "an instance type that does not exist",
        config: { "meshstack:natsInstanceType": "g6-standard-99" }, key: "meshstack:natsInstanceType", value: "g6-standard-99",
        says: /is not a Linode instance type in the Linode catalog .*allowed: in that family g6-standard-1, g6-standard-2, .*g6-standard-32; or, for an instance type newer than the catalog, list g6-standard-99 in meshstack:linodeCatalogExtraIds/,
    },
    {
        name: "a golden guest on the golden build's VMID",
        config: { ...PROXMOX_WITH_TEMPLATE, "meshstack:proxmoxGuests": ["vmid=101;hostname=web-1", "vmid=9000;hostname=web-2"] },
        key: "meshstack:proxmoxGuests", value: "vmid=9000;hostname=web-2",
        says: /item 1: guest web-2 has vmid 9000, the VMID of the golden build container \(meshstack:proxmoxGoldenVmid\): the next golden rebuild destroys it; allowed: a vmid other than 9000/,
    },
    {
        name: "a bootstrap URL lifetime shorter than the key-poll timeout",
        config: { "meshstack:bootstrapUrlExpirySeconds": 300 }, key: "meshstack:bootstrapUrlExpirySeconds", value: "300",
        says: /is shorter than meshstack:wgPubkeyPollTimeoutSeconds \(480\).*allowed: an integer from 480 to 604800, or a wgPubkeyPollTimeoutSeconds of at most 300/,
    },
    {
        name: "a stack named Prod",
        stack: "Prod", config: {}, key: "stack name", value: "Prod",
        says: /reads as prod but is not prod, so it would be a custom stack with none of prod's protections and refusals; allowed: exactly prod/,
    },
    {
        name: "a preview stack named PR-12",
        stack: "PR-12", config: {}, key: "stack name", value: "PR-12",
        says: /reads as pr-12 but is not pr-12/,
    },
    {
        name: "a preview stack named pr-012",
        stack: "pr-012", config: {}, key: "stack name", value: "pr-012",
        says: /reads as pr-12 but is not pr-12/,
    },
    {
        name: "a word where an integer belongs",
        config: { "meshstack:natsNodeCount": "abc" }, key: "meshstack:natsNodeCount", value: "abc",
        says: /is not an integer; allowed: an odd integer from 1 to 7/,
    },
    {
        name: "a number where a string belongs (the CLI's own type rule)",
        config: { "meshstack:natsClusterName": 123 }, key: "meshstack:natsClusterName", value: "123",
        says: /is not of type string, as Pulumi.yaml declares it, so the Pulumi CLI refuses the stack/,
    },
    {
        name: "a Proxmox endpoint with port 80060",
        config: { "meshstack:proxmoxEndpoint": "https://pve.example.net:80060" }, key: "meshstack:proxmoxEndpoint", value: "https://pve.example.net:80060",
        says: /has port "80060", not a port from 1 to 65535/,
    },
    {
        name: "an object store endpoint with port 0",
        config: { "meshstack:objectStoreKind": "s3", "meshstack:objectStoreRegion": "us-east-1", "meshstack:objectStoreEndpoint": "https://s3.example.net:0" },
        key: "meshstack:objectStoreEndpoint", value: "https://s3.example.net:0",
        says: /has port "0", not a port from 1 to 65535/,
    },
    {
        name: "an operator peer that is not a peer",
        config: { "meshstack:wgOperatorPeers": ["laptop-ana notakey 10.44.0.200"] }, key: "meshstack:wgOperatorPeers", value: '["laptop-ana notakey 10.44.0.200"]',
        says: /"notakey" is not a WireGuard public key/,
    },
    {
        name: "an unknown key",
        config: { "meshstack:natsNodeCont": 3 }, key: "meshstack:natsNodeCont", value: "3",
        says: /unknown key; did you mean meshstack:natsNodeCount\?/,
    },
    {
        name: "a misspelt secret key holding its secret in clear",
        config: { "meshstack:proxmoxTokenSecrte": "4f9c2a7e-made-up-for-this-test" }, key: "meshstack:proxmoxTokenSecrte", value: "[secret]",
        says: /unknown key; did you mean meshstack:proxmoxTokenSecret\?/, secret: "4f9c2a7e-made-up-for-this-test",
    },
];

describe("bad stack files", () => {
    for (const bad of BAD_STACKS) {
        it(`refuse ${bad.name}, naming key, value and what is allowed`, () => {
            const report = reportOf(check(bad.config, bad.stack));
            const line = lineFor(report, bad.key);
            const shown = valueShown(line, bad.key);
            if (typeof bad.value === "string") assert.strictEqual(shown, bad.value, line);
            else assert.match(shown, bad.value, line);
            assert.match(line, bad.says);
            assert.match(line, /allowed: /);
            if (bad.secret) assert.ok(!report.includes(bad.secret) && !report.includes(bad.secret.slice(0, 24)), `the report echoes the secret:\n${report}`);
        });
    }

    it("report every class at once, one line each, in one report: a type error hides nothing", () => {
        // Cases that set different keys, so each keeps its own line; the stack name is one more.
        const together = BAD_STACKS.filter((b, i) => !b.stack && BAD_STACKS.findIndex((other) => other.key === b.key) === i && !/proxmoxGuests|objectStore|repeated CIDR/.test(`${b.key} ${b.name}`));
        const report = reportOf(check(Object.assign({}, ...together.map((b) => b.config)), "Prod"));
        for (const bad of together) assert.match(lineFor(report, bad.key), bad.says);
        lineFor(report, "stack name");
        assert.match(report, new RegExp(`invalid stack configuration \\(${together.length + 1} problems\\)`));
    });

    it("name the file, line and column of a YAML error", () => {
        const report = reportOf(checkStackText(PROJECT, "config:\n  meshstack:region: [us-east\n  meshstack:natsNodeCount: 3\n", "dev"));
        assert.match(report, /^Pulumi\.dev\.yaml: not valid YAML: .* at line \d+, column \d+/);
    });

    it("name the file of a key written twice", () => {
        const report = reportOf(checkStackText(PROJECT, "config:\n  meshstack:region: us-east\n  meshstack:region: us-ord\n", "staging"));
        assert.match(report, /^Pulumi\.staging\.yaml: not valid YAML: Map keys must be unique at line 3, column 3/);
    });

    it("never echo a private key quoted in a YAML error", () => {
        const text = `config:\n  meshstack:natsClientCaCertPem: "${RSA_PRIVATE_KEY.replace(/\n/g, "\\n")}\n  meshstack:region: us-east\n`;
        const report = reportOf(checkStackText(PROJECT, text, "dev"));
        assert.match(report, /not valid YAML/);
        assert.ok(!report.includes(RSA_PRIVATE_BODY), report);
    });
});

describe("a WireGuard key shaped like a private key", () => {
    it("is accepted with a warning naming the peer and a fingerprint, never the key", () => {
        const result = check({ "meshstack:wgOperatorPeers": [`laptop-ana ${CLAMPED_WG_KEY} 10.44.0.200`] });
        assert.ok(result.ok, result.ok ? "" : result.report);
        assert.strictEqual(result.warnings.length, 1);
        assert.strictEqual(result.warnings[0].key, "meshstack:wgOperatorPeers");
        assert.match(result.warnings[0].message, /peer laptop-ana: the key \(sha256:[0-9a-f]{12}\) has the shape of a WireGuard private key .*1 public key in 32/);
        assert.ok(!result.warnings[0].message.includes(CLAMPED_WG_KEY.slice(0, 20)));
    });

    it("is not warned about when it is not clamped", () => {
        const result = check({ "meshstack:wgOperatorPeers": [`laptop-ana ${UNCLAMPED_WG_KEY} 10.44.0.200`] });
        assert.ok(result.ok, result.ok ? "" : result.report);
        assert.deepStrictEqual(result.warnings, []);
    });

    it("is listed among the warnings of a refused stack too", () => {
        const report = reportOf(check({ "meshstack:wgOperatorPeers": [`laptop-ana ${CLAMPED_WG_KEY} 10.44.0.200`], "meshstack:region": "us-eest" }));
        assert.match(report, /stack configuration warning \(1\):\n  - meshstack:wgOperatorPeers: peer laptop-ana/);
    });
});

describe("the Linode catalog", () => {
    it("accepts a region newer than the catalog when linodeCatalogExtraIds lists it", () => {
        const result = check({ "meshstack:region": "no-osl-1", "meshstack:objectStoreRegion": "no-osl-1", "meshstack:natsInstanceType": "g8-dedicated-4-2", "meshstack:linodeCatalogExtraIds": ["no-osl-1", "g8-dedicated-4-2"] });
        assert.ok(result.ok, result.ok ? "" : result.report);
        assert.strictEqual(result.config.region, "no-osl-1");
    });

    it("warns about an extra id the catalog now has", () => {
        const result = check({ "meshstack:linodeCatalogExtraIds": ["us-ord"] });
        assert.ok(result.ok, result.ok ? "" : result.report);
        assert.match(result.warnings.map((w) => w.message).join("\n"), /us-ord is in the Linode catalog of \d{4}-\d\d-\d\d \(lib\/linodeCatalog\.json\) now/);
    });

    it("leaves an s3 store's region to S3", () => {
        const result = check({ "meshstack:objectStoreKind": "s3", "meshstack:objectStoreRegion": "eu-west-3", "meshstack:objectStoreEndpoint": "https://s3.eu-west-3.amazonaws.com" });
        assert.ok(result.ok, result.ok ? "" : result.report);
    });

    it("carries its date, and prices no type it does not list", () => {
        const catalog = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "lib/linodeCatalog.json"), "utf8"));
        assert.match(catalog.asOf, /^\d{4}-\d\d-\d\d$/);
        const { LINODE_PRICES } = require("../../../tooling/linodePrices") as typeof import("../../../tooling/linodePrices");
        assert.deepStrictEqual(Object.keys(LINODE_PRICES.instanceMonthly).filter((t) => !catalog.instanceTypes.includes(t)), []);
    });
});

describe("valid changes", function () {
    this.timeout(120_000);

    it("a network CIDR, an IPv6 network and one address each pass", () => {
        const result = check({ "meshstack:breakGlassSshCidrs": ["203.0.113.7/32", "2001:db8::/48", "10.0.0.0/8"], "meshstack:natsClientCidrs": ["0.0.0.0/0"] });
        assert.ok(result.ok, result.ok ? "" : result.report);
    });

    it("a URL lifetime equal to the key-poll timeout passes", () => {
        const result = check({ "meshstack:bootstrapUrlExpirySeconds": 600, "meshstack:wgPubkeyPollTimeoutSeconds": 600 });
        assert.ok(result.ok, result.ok ? "" : result.report);
    });

    it("a changed wgListenPort passes the config and the policy pack", async () => {
        const config = check({ "meshstack:wgListenPort": 51821 });
        assert.ok(config.ok, config.ok ? "" : config.report);
        const { cloud } = await runStackProgram("dev", { "meshstack:wgListenPort": "51821" });
        const violations = checkStack(policyResources("meshstack", "dev", cloud.resources), policyConfigForStack({ wireguardPort: 51821, natsClientCidrs: [] }));
        assert.deepStrictEqual(violations, []);
    });

    it("an s3-kind stack plans with no credentials in the environment", async () => {
        const saved = Object.fromEntries(S3_CREDENTIAL_VARIABLES.map((name) => [name, process.env[name]]));
        for (const name of S3_CREDENTIAL_VARIABLES) delete process.env[name];
        try {
            assert.throws(() => s3CredentialsFromEnv(process.env), /AWS_ACCESS_KEY_ID/);
            assert.deepStrictEqual(withOfflineS3Credentials(process.env), S3_CREDENTIAL_VARIABLES);
            const s3 = { "meshstack:objectStoreKind": "s3", "meshstack:objectStoreRegion": "us-east-1", "meshstack:objectStoreEndpoint": "https://s3.us-east-1.amazonaws.com" };
            const { cloud } = await runStackProgram("dev", s3);
            assert.ok(cloud.ofType("aws:s3/bucket:Bucket").length > 0, "the program declares the S3 buckets");
            s3AgentCredentialsFromEnv(process.env);
        } finally {
            for (const [name, value] of Object.entries(saved)) {
                if (value === undefined) delete process.env[name];
                else process.env[name] = value;
            }
        }
    });

    it("keeps credentials that are set", () => {
        const env: NodeJS.ProcessEnv = { AWS_ACCESS_KEY_ID: "AKIAEXAMPLE", AWS_SECRET_ACCESS_KEY: "set" };
        assert.deepStrictEqual(withOfflineS3Credentials(env), ["MESHSTACK_AGENT_ACCESS_KEY_ID", "MESHSTACK_AGENT_SECRET_ACCESS_KEY"]);
        assert.strictEqual(env.AWS_ACCESS_KEY_ID, "AKIAEXAMPLE");
    });
});
