/**
 * Writes Pulumi.yaml's config block from the key table in lib/config/:
 *
 *   npm run gen:config
 *
 * Run it after adding or changing a key; tests/tooling/projectConfig.test.ts
 * fails until the committed file is what this writes.
 */
import * as fs from "fs";
import * as path from "path";
import { withGeneratedConfig } from "../tooling/projectConfig";

const file = path.resolve(__dirname, "..", "Pulumi.yaml");
fs.writeFileSync(file, withGeneratedConfig(fs.readFileSync(file, "utf8")));
