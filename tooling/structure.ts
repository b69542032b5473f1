/**
 * The source tree's shape, read with the TypeScript compiler: the longest
 * files, the longest functions and every import circle. A refactor is judged
 * by these figures before and after (`npm run structure`), and a test holds
 * the tree at zero circles: a circle is how a module that renders text ends up
 * needing one that wires resources, and it is cheapest to refuse on day one.
 */
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";

/** Folders whose `.ts` files are the project's source (tests and fixtures are not). */
export const SOURCE_ROOTS = ["index.ts", "components", "providers", "cloudinit", "lib", "tooling", "box", "scripts", "bench", "policy"];

export interface Sized {
    name: string;
    lines: number;
}

export interface StructureReport {
    files: Sized[];
    functions: Sized[];
    circles: string[][];
}

function sourceFiles(repoRoot: string): string[] {
    const found: string[] = [];
    const visit = (relative: string): void => {
        const full = path.join(repoRoot, relative);
        if (!fs.existsSync(full)) return;
        if (fs.statSync(full).isDirectory()) {
            for (const entry of fs.readdirSync(full).sort()) {
                if (entry !== "node_modules") visit(path.join(relative, entry));
            }
        } else if (relative.endsWith(".ts") && !relative.endsWith(".d.ts")) {
            found.push(relative);
        }
    };
    SOURCE_ROOTS.forEach(visit);
    return found;
}

function lineOf(source: ts.SourceFile, position: number): number {
    return source.getLineAndCharacterOfPosition(position).line;
}

function functionName(node: ts.Node, file: string): string {
    const owner = ts.isConstructorDeclaration(node) ? node.parent : node;
    const named = (owner as { name?: ts.Node }).name;
    const ownName = named && ts.isIdentifier(named) ? named.text : undefined;
    if (ts.isConstructorDeclaration(node)) return `${file}:${ownName ?? "class"}.constructor`;
    if (ownName) return `${file}:${ownName}`;
    const parent = node.parent;
    if (parent && ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name)) return `${file}:${parent.name.text}`;
    if (parent && ts.isPropertyAssignment(parent) && ts.isIdentifier(parent.name)) return `${file}:${parent.name.text}`;
    return `${file}:(anonymous at line ${lineOf(node.getSourceFile(), node.getStart()) + 1})`;
}

/** Every function-like body's span in lines, nested ones counted on their own too. */
export function functionSpans(file: string, text: string): Sized[] {
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
    const spans: Sized[] = [];
    const visit = (node: ts.Node): void => {
        if (ts.isFunctionLike(node) && (node as ts.FunctionLikeDeclaration).body) {
            const lines = lineOf(source, node.getEnd()) - lineOf(source, node.getStart()) + 1;
            spans.push({ name: functionName(node, file), lines });
        }
        ts.forEachChild(node, visit);
    };
    visit(source);
    return spans;
}

/** Relative imports of one file, resolved to repository paths (a folder import resolves to its index.ts). */
export function localImports(file: string, text: string, exists: (candidate: string) => boolean): string[] {
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
    const targets: string[] = [];
    for (const statement of source.statements) {
        const specifier = (ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)) ? statement.moduleSpecifier : undefined;
        if (!specifier || !ts.isStringLiteral(specifier) || !specifier.text.startsWith(".")) continue;
        const base = path.posix.join(path.posix.dirname(file), specifier.text);
        const resolved = [`${base}.ts`, `${base}/index.ts`].find(exists);
        if (resolved) targets.push(resolved);
    }
    return targets;
}

/** Strongly connected groups of two or more files (Tarjan), each sorted, in a stable order. */
export function importCircles(graph: Map<string, string[]>): string[][] {
    let counter = 0;
    const index = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const circles: string[][] = [];
    const connect = (node: string): void => {
        index.set(node, counter);
        low.set(node, counter);
        counter += 1;
        stack.push(node);
        onStack.add(node);
        for (const next of graph.get(node) ?? []) {
            if (!index.has(next)) {
                connect(next);
                low.set(node, Math.min(low.get(node)!, low.get(next)!));
            } else if (onStack.has(next)) {
                low.set(node, Math.min(low.get(node)!, index.get(next)!));
            }
        }
        if (low.get(node) === index.get(node)) {
            const group: string[] = [];
            let member: string;
            do {
                member = stack.pop()!;
                onStack.delete(member);
                group.push(member);
            } while (member !== node);
            if (group.length > 1) circles.push(group.sort());
        }
    };
    [...graph.keys()].sort().forEach((node) => index.has(node) || connect(node));
    return circles.sort((a, b) => a[0].localeCompare(b[0]));
}

export function structureReport(repoRoot: string): StructureReport {
    const files = sourceFiles(repoRoot);
    const known = new Set(files);
    const graph = new Map<string, string[]>();
    const sizes: Sized[] = [];
    const functions: Sized[] = [];
    for (const file of files) {
        const text = fs.readFileSync(path.join(repoRoot, file), "utf8");
        sizes.push({ name: file, lines: text.split("\n").length - (text.endsWith("\n") ? 1 : 0) });
        functions.push(...functionSpans(file, text));
        graph.set(file, localImports(file, text, (candidate) => known.has(candidate)));
    }
    const longestFirst = (a: Sized, b: Sized) => b.lines - a.lines || a.name.localeCompare(b.name);
    return { files: sizes.sort(longestFirst), functions: functions.sort(longestFirst), circles: importCircles(graph) };
}

export function formatStructureReport(report: StructureReport, top = 5): string {
    const list = (items: Sized[]) => items.slice(0, top).map((item) => `  ${String(item.lines).padStart(5)}  ${item.name}`);
    return [
        `source files: ${report.files.length}, longest first:`,
        ...list(report.files),
        "functions, longest first:",
        ...list(report.functions),
        `import circles: ${report.circles.length}`,
        ...report.circles.map((circle) => `  ${circle.join(" <-> ")}`),
    ].join("\n");
}
