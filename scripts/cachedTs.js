// Runs a TypeScript script with plain node, the way `ts-node --transpile-only`
// runs it, minus most of the time: every .ts module it loads is transpiled by
// ts-node's own compile (same compiler, options and emit, so the JavaScript,
// and each dynamic provider Pulumi serializes from it, is byte for byte what
// ts-node runs), and the JavaScript is kept in ~/.cache/meshstack/transpiled,
// beside the project's other caches and out of every checkout. The next run
// loads it without starting TypeScript, which was most of the offline plan's
// time. An entry is used only when its key (the module's path and text, the
// ts-node and TypeScript versions, tsconfig.json, any TS_NODE_* setting and
// this file) matches, so an edit is picked up by the next run.
// MESHSTACK_TRANSPILED_DIR puts the cache elsewhere (the tests use a fresh one).
//
// Modules keep their .ts file names, so __dirname and require() resolve as
// under ts-node. Stack traces show lines of the emitted JavaScript; with
// NODE_OPTIONS=--enable-source-maps node maps them to the .ts lines (from the
// map inlined in each module). That is off by default because node then also
// reads the source maps of every package loaded: about a fifth more time.
//
//   node scripts/cachedTs.js scripts/plan.ts --stack dev
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const os = require("os");
const path = require("path");

const REPO_ROOT = path.resolve(__dirname, "..");
const TSCONFIG = path.join(REPO_ROOT, "tsconfig.json");
const CACHE_DIR = process.env.MESHSTACK_TRANSPILED_DIR || path.join(os.homedir(), ".cache", "meshstack", "transpiled");

const sha256 = (...parts) => crypto.createHash("sha256").update(parts.join("\0")).digest("hex");
const packageVersion = (name) => JSON.parse(fs.readFileSync(require.resolve(`${name}/package.json`, { paths: [REPO_ROOT] }), "utf8")).version;

const EMIT_INPUTS = sha256(
    fs.readFileSync(__filename, "utf8"),
    `ts-node ${packageVersion("ts-node")}`,
    `typescript ${packageVersion("typescript")}`,
    fs.readFileSync(TSCONFIG, "utf8"),
    ...Object.keys(process.env).filter((name) => name.startsWith("TS_NODE_")).sort().map((name) => `${name}=${process.env[name]}`),
);

let tsNode;
function transpile(source, fileName) {
    if (!tsNode) {
        // ts-node installs source-map-support, which would map the stack
        // frames of this run's misses only, and only in a run that has one.
        const prepareStackTrace = Error.prepareStackTrace;
        tsNode = require(require.resolve("ts-node", { paths: [REPO_ROOT] })).create({ transpileOnly: true, project: TSCONFIG });
        Error.prepareStackTrace = prepareStackTrace;
    }
    return tsNode.compile(source, fileName);
}

// One entry per module file, named by its path and overwritten when its key
// changes, so the cache holds one version of each module, not every edit.
function cachedJavaScript(source, fileName) {
    const key = sha256(EMIT_INPUTS, fileName, source);
    const header = `// ${key}\n`;
    const entry = path.join(CACHE_DIR, `${sha256(fileName)}.js`);
    let cached;
    try {
        cached = fs.readFileSync(entry, "utf8");
    } catch (err) {
        if (err.code !== "ENOENT") throw err;
    }
    if (cached !== undefined && cached.startsWith(header)) return cached.slice(header.length);
    const javaScript = transpile(source, fileName);
    fs.mkdirSync(CACHE_DIR, { recursive: true });
    // Renamed into place whole: a concurrent run reads the old entry or the new, never half of one.
    const partial = `${entry}.${process.pid}.tmp`;
    fs.writeFileSync(partial, header + javaScript);
    fs.renameSync(partial, entry);
    return javaScript;
}

const loadJavaScript = require.extensions[".js"];
require.extensions[".ts"] = (module, fileName) => {
    // ts-node leaves packages' own .ts files to node, as plain JavaScript.
    if (fileName.split(path.sep).includes("node_modules")) return loadJavaScript(module, fileName);
    module._compile(cachedJavaScript(fs.readFileSync(fileName, "utf8"), fileName), fileName);
};

const [entryPoint, ...args] = process.argv.slice(2);
if (!entryPoint || !entryPoint.endsWith(".ts")) {
    console.error(`usage: node scripts/cachedTs.js <script.ts> [arguments...]; got ${JSON.stringify(entryPoint)}`);
    process.exit(2);
}
// As ts-node starts it: the script is the main module, with its own argv.
process.argv = [process.argv[0], path.resolve(entryPoint), ...args];
require("module").runMain();
