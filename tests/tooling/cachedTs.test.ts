import * as assert from "assert";
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";

const run = promisify(execFile);
const LAUNCHER = path.resolve(__dirname, "../../scripts/cachedTs.js");

/**
 * scripts/cachedTs.js (what `npm run plan` runs) on a two-module script:
 * main.ts prints the value value.ts exports, and whether this run started
 * ts-node, i.e. transpiled anything instead of reading the cache.
 */
describe("cachedTs (the offline plan's runner)", function () {
    this.timeout(60_000);
    let dir: string;
    let cacheDir: string;
    const valueFile = () => path.join(dir, "value.ts");

    async function runMain(env: Record<string, string> = {}): Promise<{ value: string; transpiled: boolean; argv: string[]; main: boolean }> {
        const { stdout } = await run(process.execPath, [LAUNCHER, path.join(dir, "main.ts"), "--flag"], {
            env: { ...process.env, MESHSTACK_TRANSPILED_DIR: cacheDir, ...env },
        });
        return JSON.parse(stdout);
    }
    const valueAndTranspiled = async (env?: Record<string, string>) => {
        const { value, transpiled } = await runMain(env);
        return { value, transpiled };
    };

    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "cached-ts-"));
        cacheDir = path.join(dir, "cache");
        fs.writeFileSync(path.join(dir, "main.ts"), [
            'import { value } from "./value";',
            "const tsNodeLoaded = Object.keys(require.cache).some((file) => file.includes(`${require(\"path\").sep}ts-node${require(\"path\").sep}`));",
            "console.log(JSON.stringify({ value, transpiled: tsNodeLoaded, argv: process.argv.slice(2), main: require.main === module }));",
            "",
        ].join("\n"));
        fs.writeFileSync(valueFile(), 'export const value: string = "one";\n');
    });

    afterEach(() => {
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("runs the script as its main module with its arguments", async () => {
        const { argv, main } = await runMain();
        assert.deepStrictEqual(argv, ["--flag"]);
        assert.strictEqual(main, true);
    });

    it("transpiles on the first run only, and picks up an edit to an imported module on the next run", async () => {
        assert.deepStrictEqual(await valueAndTranspiled(), { value: "one", transpiled: true });
        assert.deepStrictEqual(await valueAndTranspiled(), { value: "one", transpiled: false });

        // Same length and the same modification time: only the text tells the edit apart.
        const { atime, mtime } = fs.statSync(valueFile());
        fs.writeFileSync(valueFile(), 'export const value: string = "two";\n');
        fs.utimesSync(valueFile(), atime, mtime);
        assert.deepStrictEqual(await valueAndTranspiled(), { value: "two", transpiled: true });
        assert.deepStrictEqual(await valueAndTranspiled(), { value: "two", transpiled: false });
    });

    it("keeps one cache entry per module, replaced when the module changes", async () => {
        await runMain();
        fs.writeFileSync(valueFile(), 'export const value: string = "three";\n');
        await runMain();
        assert.strictEqual(fs.readdirSync(cacheDir).length, 2, fs.readdirSync(cacheDir).join(", "));
    });

    it("transpiles again under another ts-node setting, which can change the emit", async () => {
        await runMain();
        assert.deepStrictEqual(await valueAndTranspiled({ TS_NODE_COMPILER_OPTIONS: '{"target":"ES2020"}' }), { value: "one", transpiled: true });
    });
});
