import * as assert from "assert";
import * as path from "path";
import { functionSpans, importCircles, localImports, structureReport } from "../../tooling/structure";

describe("tooling/structure: the source tree's shape", () => {
    it("finds a two-file circle and a longer one, and nothing in a tree without one", () => {
        const graph = new Map([
            ["a.ts", ["b.ts"]],
            ["b.ts", ["a.ts", "c.ts"]],
            ["c.ts", ["d.ts"]],
            ["d.ts", ["e.ts"]],
            ["e.ts", ["c.ts"]],
            ["f.ts", ["a.ts"]],
        ]);
        assert.deepStrictEqual(importCircles(graph), [["a.ts", "b.ts"], ["c.ts", "d.ts", "e.ts"]]);
        assert.deepStrictEqual(importCircles(new Map([["a.ts", ["b.ts"]], ["b.ts", []]])), []);
    });

    it("resolves relative imports and re-exports to files, a folder to its index.ts, and ignores packages", () => {
        const text = [
            'import * as fs from "fs";',
            'import { a } from "./a";',
            'import { b } from "../lib/config";',
            'export { c } from "./c";',
            'import "./missing";',
        ].join("\n");
        const exists = (candidate: string) => ["components/a.ts", "lib/config/index.ts", "components/c.ts"].includes(candidate);
        assert.deepStrictEqual(localImports("components/x.ts", text, exists), ["components/a.ts", "lib/config/index.ts", "components/c.ts"]);
    });

    it("measures each function from its first line to its last, constructors and arrow functions by name", () => {
        const text = ["class Box {", "    constructor() {", "        one();", "    }", "}", "const arrow = () => {", "    two();", "    three();", "};"].join("\n");
        assert.deepStrictEqual(functionSpans("x.ts", text), [
            { name: "x.ts:Box.constructor", lines: 3 },
            { name: "x.ts:arrow", lines: 4 },
        ]);
    });

    it("holds the project at zero import circles", () => {
        const report = structureReport(path.resolve(__dirname, "../.."));
        assert.ok(report.files.length > 50, `read only ${report.files.length} source files`);
        assert.deepStrictEqual(report.circles, [], `import circles:\n${report.circles.map((c) => c.join(" <-> ")).join("\n")}`);
    });
});
