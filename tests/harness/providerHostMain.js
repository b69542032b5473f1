// A fresh Node process that hosts one serialized dynamic provider the way
// @pulumi/pulumi/cmd/dynamic-provider does: require-from-string on the
// `__provider` text, `.handler()`, then CRUD calls with JSON-shaped
// properties (the engine passes protobuf Structs, so undefined vanishes and
// every value is plain JSON). The harness speaks to it over fd 3 so the
// provider's own stdout/stderr (its progress log) stay separate.
"use strict";
const fs = require("fs");
const path = require("path");
const readline = require("readline");
// Resolve exactly as the engine's host does: from @pulumi/pulumi's own deps.
const hostDir = path.dirname(require.resolve("@pulumi/pulumi/cmd/dynamic-provider/index.js", { paths: [process.cwd()] }));
const requireFromString = require(require.resolve("require-from-string", { paths: [hostDir] }));

// A preview must not reach the network: with MESHSTACK_PROVIDER_HOST_OFFLINE=1
// every way out of the process fails loudly and leaves a line the harness reads.
const OFFLINE_MARK = "[provider-host] network access during an offline call:";
if (process.env.MESHSTACK_PROVIDER_HOST_OFFLINE === "1") {
  const refuse = (what) => {
    process.stderr.write(`${OFFLINE_MARK} ${what}\n`);
    throw new Error(`${OFFLINE_MARK} ${what}`);
  };
  globalThis.fetch = async (url) => refuse(`fetch ${url}`);
  const net = require("net");
  net.Socket.prototype.connect = function (...args) {
    return refuse(`connect ${JSON.stringify(args[0])}`);
  };
  const dns = require("dns");
  dns.lookup = (host) => refuse(`dns lookup ${host}`);
  dns.promises.lookup = async (host) => refuse(`dns lookup ${host}`);
}

// Under mutation testing (npm run mutate) the serialized provider carries
// Stryker's instrumented code, which reads global.__stryker__: give it one,
// with the mutant the test process has active, so the provider runs the same
// mutant as the test that drives it.
if (process.env.MESHSTACK_MUTATION_TESTING === "1") {
  globalThis.__stryker__ = { activeMutant: process.env.MESHSTACK_ACTIVE_MUTANT || undefined };
}

// Each answer says how many lines the provider had printed by then, and the
// harness holds the answer until it has read them: the log and the answers
// travel on separate pipes, and under load an answer overtook the progress
// line printed before it (a diff's drift line read as missing).
let printedLines = 0;
for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream);
  stream.write = (chunk, ...rest) => {
    printedLines += (String(chunk).match(/\n/g) || []).length;
    return write(chunk, ...rest);
  };
}

const [serializedPath] = process.argv.slice(2);
const provider = requireFromString(fs.readFileSync(serializedPath, "utf8")).handler();
const protocolOut = fs.createWriteStream(null, { fd: 3 });
const protocolIn = readline.createInterface({ input: fs.createReadStream(null, { fd: 4 }) });

// As @pulumi/pulumi/cmd/dynamic-provider/config.js: a key without a namespace is the project's.
function stackConfig(values) {
  const get = (key) => values[key.includes(":") ? key : `meshstack:${key}`];
  return { get, require: (key) => { const value = get(key); if (value === undefined) throw new Error(`Missing required configuration key: ${key}`); return value; } };
}

const jsonShaped = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

async function call(method, args) {
  switch (method) {
    case "configure":
      return provider.configure ? provider.configure({ config: stackConfig(args.config || {}) }) : undefined;
    case "check":
      return provider.check ? provider.check(jsonShaped(args.olds), jsonShaped(args.news)) : { inputs: args.news };
    case "create":
      return provider.create(jsonShaped(args.inputs));
    case "read":
      return provider.read ? provider.read(args.id, jsonShaped(args.props)) : { id: args.id, props: args.props };
    case "diff":
      return provider.diff ? provider.diff(args.id, jsonShaped(args.olds), jsonShaped(args.news)) : {};
    case "update":
      return provider.update ? provider.update(args.id, jsonShaped(args.olds), jsonShaped(args.news)) : {};
    case "delete":
      return provider.delete ? provider.delete(args.id, jsonShaped(args.props)) : undefined;
    default:
      throw new Error(`unknown method ${method}`);
  }
}

protocolIn.on("line", async (line) => {
  const { seq, method, args } = JSON.parse(line);
  try {
    const result = await call(method, args);
    protocolOut.write(JSON.stringify({ seq, printedLines, result: jsonShaped(result) ?? null }) + "\n");
  } catch (err) {
    protocolOut.write(JSON.stringify({ seq, printedLines, error: { message: String(err && err.message ? err.message : err), stack: err && err.stack } }) + "\n");
  }
});
protocolIn.on("close", () => process.exit(0));
