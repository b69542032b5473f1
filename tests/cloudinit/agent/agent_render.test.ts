/**
 * cloudinit/agent/agent_render.py, the agent's renderer, as a file of its
 * own: its Python unit tests (test_agent_render.py beside this file), and
 * how cloudinit/agent.ts gives each node its copy, the file with only the
 * constants block replaced. The rendered renderer on sample desired states
 * and in the agent's runs is tested in tests/cloudinit/agent.test.ts.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    AGENT_RENDER_CONSTANTS_BEGIN, AGENT_RENDER_CONSTANTS_END, AGENT_RENDER_SOURCE, AgentParams, embedAgentRenderConstants, renderAgentCredentials, renderAgentRenderer,
} from "../../../cloudinit/agent";
import { AgentKeyPair, agentKeyId, sealAgentKey, X25519_PKCS8_PREFIX } from "../../../lib/agentKey";
import { NATS_NODE_LAYOUT, NATS_ROUTE_PASSWORD_PATH, NATS_ROUTE_USER } from "../../../cloudinit/nats";
import { wgInterfaceSection } from "../../../cloudinit/nodeBootstrap";
import { DEBIAN_PYTHON } from "../../support/cloudInit";

/** The node the file's sample constants describe. */
const sampleNode: AgentParams = {
    node: "meshstack-dev-0", endpoint: "https://us-east-1.linodeobjects.com", region: "us-east-1", bucket: "meshstack-dev-runtime", key: "desired/dev/meshstack-dev-0.json",
    wgAddress: "10.44.0.10/24", wgListenPort: 51820,
    interfaceSection: wgInterfaceSection({ address: "10.44.0.10/24", listenPort: 51820 }),
    nats: {
        layout: NATS_NODE_LAYOUT,
        certificates: [{ file: "route-ca.crt" }, { file: "route.crt" }, { file: "client-ca.crt" }, { file: "server.crt" }],
        routeUser: NATS_ROUTE_USER, routePasswordPath: NATS_ROUTE_PASSWORD_PATH, monitorPort: 8222,
    },
};

/** The public key of a raw X25519 private key (32 bytes), as `wg pubkey` prints it. */
function wgPublicKey(rawPrivateKey: Buffer): string {
    const privateKey = crypto.createPrivateKey({ key: Buffer.concat([Buffer.from(X25519_PKCS8_PREFIX, "hex"), rawPrivateKey]), format: "der", type: "pkcs8" });
    return (crypto.createPublicKey(privateKey).export({ format: "der", type: "spki" }) as Buffer).subarray(-32).toString("base64");
}

/**
 * Seals made by lib/agentKey.ts for test_agent_render.py (MESHSTACK_AGENT_KEY_FIXTURES):
 * the renderer must open what the deploy seals, so the Python tests do not seal for themselves.
 */
function agentKeyFixtures(): unknown {
    // The node's key is the Python tests' wg_key(9): 32 bytes of 9.
    const nodeKey = wgPublicKey(Buffer.alloc(32, 9));
    const otherNodeKey = wgPublicKey(Buffer.alloc(32, 7));
    const current: AgentKeyPair = { accessKeyId: "meshstack-agent-a", secretAccessKey: "CurrentSecret0123456789+/=" };
    const next: AgentKeyPair = { accessKeyId: "meshstack-agent-b", secretAccessKey: "NextSecret_0123456789-abc" };
    const unsafe: AgentKeyPair = { accessKeyId: "meshstack-agent-c", secretAccessKey: "Next\"Secret" };
    return {
        currentCredentials: renderAgentCredentials(current.accessKeyId, current.secretAccessKey),
        currentId: agentKeyId(current.accessKeyId),
        nextCredentials: renderAgentCredentials(next.accessKeyId, next.secretAccessKey),
        nextSecret: next.secretAccessKey,
        nextId: agentKeyId(next.accessKeyId),
        sealedToNode: sealAgentKey(next, nodeKey),
        sealedToOtherNode: sealAgentKey(next, otherNodeKey),
        unsafeId: agentKeyId(unsafe.accessKeyId),
        unsafeSealed: sealAgentKey(unsafe, nodeKey),
    };
}

describe("agent_render.py (the agent's renderer, a Python file of its own)", () => {
    it("passes its Python unit tests under the python3 the nodes run it with", () => {
        // Run from mocha rather than from scripts/test.sh because Python 3.11's
        // unittest exits 0 when it finds no test at all; this checks it ran some.
        // No bytecode, so a test run leaves no __pycache__ in the source tree.
        const fixtures = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-agent-key-")), "fixtures.json");
        fs.writeFileSync(fixtures, JSON.stringify(agentKeyFixtures()));
        const env = { ...process.env, PYTHONDONTWRITEBYTECODE: "1", MESHSTACK_AGENT_KEY_FIXTURES: fixtures };
        const result = spawnSync(DEBIAN_PYTHON, ["-m", "unittest", "-v", "test_agent_render"], { cwd: __dirname, env, encoding: "utf8" });
        fs.rmSync(path.dirname(fixtures), { recursive: true });
        assert.ifError(result.error);
        assert.strictEqual(result.status, 0, result.stderr);
        assert.match(result.stderr, /^Ran [1-9]\d* tests in /m);
    });

    it("holds in its constants block what cloudinit/agent.ts renders for its sample node, so its unit tests run a real node's renderer", () => {
        const lines = fs.readFileSync(AGENT_RENDER_SOURCE, "utf8").split("\n");
        const begin = lines.indexOf(AGENT_RENDER_CONSTANTS_BEGIN);
        const end = lines.indexOf(AGENT_RENDER_CONSTANTS_END);
        assert.ok(begin >= 0 && end > begin, "the constants block's marker lines");
        const sampleConstants = lines.slice(begin + 1, end).filter((line) => !line.startsWith("#"));
        assert.strictEqual(renderAgentRenderer(sampleNode), [...lines.slice(0, begin), ...sampleConstants, ...lines.slice(end + 1)].join("\n"));
    });

    it("gives a node the file with only the constants block, its marker lines included, replaced by the node's constants", () => {
        const source = ["#!/usr/bin/python3", "import os", AGENT_RENDER_CONSTANTS_BEGIN, "# why the block is there", "ROLE = \"nats\"", AGENT_RENDER_CONSTANTS_END, "print(ROLE)", ""].join("\n");
        assert.strictEqual(embedAgentRenderConstants(source, ["ROLE = \"hub\"", "ROUTE_USER = \"\""]), "#!/usr/bin/python3\nimport os\nROLE = \"hub\"\nROUTE_USER = \"\"\nprint(ROLE)\n");
    });

    const broken: [string, string[], RegExp][] = [
        ["no block", ["import os", "ROLE = \"nats\""], /has 0 lines "# BEGIN per-node constants"; it needs exactly one/],
        ["no end marker", [AGENT_RENDER_CONSTANTS_BEGIN, "ROLE = \"nats\""], /has 0 lines "# END per-node constants"; it needs exactly one/],
        ["two blocks", [AGENT_RENDER_CONSTANTS_BEGIN, AGENT_RENDER_CONSTANTS_END, AGENT_RENDER_CONSTANTS_BEGIN, AGENT_RENDER_CONSTANTS_END], /has 2 lines "# BEGIN per-node constants"; it needs exactly one/],
        ["the markers reversed", [AGENT_RENDER_CONSTANTS_END, "ROLE = \"nats\"", AGENT_RENDER_CONSTANTS_BEGIN], /has "# END per-node constants" before "# BEGIN per-node constants"/],
        ["a marker with trailing space", [`${AGENT_RENDER_CONSTANTS_BEGIN} `, AGENT_RENDER_CONSTANTS_END], /has 0 lines "# BEGIN per-node constants"/],
    ];
    for (const [what, source, message] of broken) {
        it(`refuses to render from a source with ${what}: a node would get the sample constants`, () => {
            assert.throws(() => embedAgentRenderConstants(source.join("\n"), ["ROLE = \"hub\""]), message);
        });
    }
});
