/**
 * Prints the source tree's longest files, longest functions and import
 * circles, the figures a refactor is measured by:
 *
 *   npm run structure [-- --top N]
 */
import * as path from "path";
import { formatStructureReport, structureReport } from "../tooling/structure";

const topIndex = process.argv.indexOf("--top");
const top = topIndex >= 0 ? Number(process.argv[topIndex + 1]) : 5;
console.log(formatStructureReport(structureReport(path.resolve(__dirname, "..")), top));
