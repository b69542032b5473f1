// Mutation testing (`npm run mutate`): a developer tool, not part of CI or
// `npm test`. It mutates the pure rendering, config and address modules and
// the providers' pure functions, then runs the fast unit tests against each
// mutant; a mutant no test notices is a gap in the tests.
//
// One folder at a time: `npm run mutate -- --mutate 'cloudinit/**/*.ts'`.
// The report lands in reports/mutation/ (HTML and JSON).
import * as fs from "node:fs";

/**
 * `file:first-last` for one top-level function, found by its declaration, so
 * the range follows the source as it moves. Only the providers' pure
 * functions are mutated: the provider objects run in a separate host process
 * (tests/harness), where Stryker can neither activate a mutant nor see which
 * test covers it.
 */
function functionRange(file, name) {
    const lines = fs.readFileSync(new URL(file, import.meta.url), "utf8").split("\n");
    const first = lines.findIndex((line) => new RegExp(`^export (async )?function ${name}\\b`).test(line));
    if (first < 0) throw new Error(`stryker.config.mjs: no exported function ${name} in ${file}`);
    const last = lines.findIndex((line, i) => i > first && line === "}");
    return `${file}:${first + 1}-${last + 1}`;
}

const providerPureFunctions = {
    "providers/presignedUrl.ts": ["presignedUrlInputProblems"],
    "providers/jetstreamKv.ts": ["jetStreamKvInputProblems"],
    "providers/wgPubkeyPoll.ts": ["pollDelayMs", "pollForPublicKey", "publishedRequestProblems", "wgPubkeyPollInputProblems"],
    "providers/bootUrlsCheck.ts": ["bootUrlsProblem"],
    "providers/natsRejoin.ts": ["natsRejoinInputProblems"],
    "providers/bootstrapObject.ts": ["waitForPublication", "runCleanup"],
    "providers/agentKeyRollout.ts": ["waitForAgentKeyReports", "agentKeyRolloutInputProblems", "unreportedConsequence"],
    "providers/natsScaleDown.ts": ["leaveMetaGroup"],
    "providers/natsMetaGroup.ts": ["settleMetaGroup"],
};

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
    packageManager: "npm",
    testRunner: "mocha",
    checkers: ["typescript"],
    tsconfigFile: "tsconfig.stryker.json",
    typescriptChecker: { prioritizePerformanceOverAccuracy: true },
    coverageAnalysis: "perTest",
    // A static mutant (one only module loading runs: a top-level constant, a
    // fixture rendered in a before() hook) needs every test re-run on a
    // fresh load, about two minutes each here; they are reported as ignored.
    // Tests that render inside it() or beforeEach() make their mutants
    // count.
    ignoreStatic: true,
    // 2 shared cores: one test runner and the checker.
    concurrency: 1,
    timeoutMS: 20000,
    mutate: [
        "cloudinit/**/*.ts",
        "lib/agentKey.ts",
        "lib/certRequest.ts",
        "lib/config/**/*.ts",
        "lib/ip.ts",
        "lib/limits.ts",
        "lib/meshPeers.ts",
        "lib/natsRollout.ts",
        "lib/natsScaleDown.ts",
        "lib/rebuild.ts",
        "lib/runtimeChannel.ts",
        "lib/topology.ts",
        "providers/s3.ts",
        "providers/unknowns.ts",
        // The Proxmox VE client, whole: it runs in the provider host too, but
        // its tests (tests/providers/pve/) call it in this process, against
        // the emulator.
        "providers/pve/**/*.ts",
        ...Object.entries(providerPureFunctions).flatMap(([file, names]) => names.map((name) => functionRange(file, name))),
    ],
    mochaOptions: {
        // The project's .mocharc.json (ts-node transpile-only), restricted to
        // the fast unit and property tests: no MinIO or NATS cluster
        // integration, no offline plan or engine runs, no VMs.
        config: ".mocharc.json",
        spec: [
            "tests/lib/config/*.test.ts",
            "tests/lib/environments.test.ts",
            "tests/tooling/cliConfig.test.ts",
            "tests/lib/naming.test.ts",
            "tests/providers/unknowns.test.ts",
            "tests/cloudinit/delivery.test.ts",
            "tests/cloudinit/wgMesh.test.ts",
            "tests/lib/endpoint.test.ts",
            "tests/providers/wgPubkeyPoll.test.ts",
            "tests/lib/certRequest.test.ts",
            "tests/cloudinit/wgCache.test.ts",
            "tests/cloudinit/nats.test.ts",
            "tests/providers/presignedUrl.test.ts",
            "tests/providers/s3.test.ts",
            "tests/lib/topology.test.ts",
            "tests/lib/runtimeChannel.test.ts",
            "tests/lib/meshPeers.test.ts",
            "tests/lib/natsRollout.test.ts",
            "tests/lib/natsStreamLoss.test.ts",
            "tests/lib/rebuild.test.ts",
            "tests/lib/agentKey.test.ts",
            "tests/providers/agentKeyRollout.test.ts",
            "tests/lib/natsScaleDown.test.ts",
            "tests/providers/natsScaleDown.test.ts",
            "tests/providers/natsMetaGroup.test.ts",
            "tests/providers/bootUrlsCheck.test.ts",
            "tests/providers/bootstrapObject.test.ts",
            "tests/providers/pve/*.test.ts",
            "tests/**/*.property.test.ts",
        ],
    },
    ignorePatterns: ["out", "bin", ".bench", "reports", ".stryker-tmp"],
    reporters: ["clear-text", "progress", "html", "json"],
    htmlReporter: { fileName: "reports/mutation/mutation.html" },
    jsonReporter: { fileName: "reports/mutation/mutation.json" },
    tempDirName: ".stryker-tmp",
};
