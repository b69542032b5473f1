/**
 * cloud-init's own code as the judge of delivered user-data: the Debian
 * cloud-init package's `cloudinit.user_data.UserDataProcessor` (what a node
 * runs on the Linode user-data it receives: gzip detection, `#include`
 * fetching, part typing) and `cloud-init schema`. The package imports under
 * Debian's /usr/bin/python3 only, not under the python3 first on PATH.
 */
import { execFile } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import * as YAML from "yaml";
import { toolPath } from "./tools";

const run = promisify(execFile);
export const DEBIAN_PYTHON = "/usr/bin/python3";

// cloud-init retries a failing include 10 times, sleeping 1 s between tries
// (url_helper.readurl). The sleep is replaced with a counter so a failure
// costs no wall time; every attempt still goes over HTTP.
const PROCESSOR_SCRIPT = String.raw`
import base64, json, shutil, sys, tempfile, time
retry_sleeps = []
time.sleep = lambda seconds: retry_sleeps.append(seconds)
from cloudinit import helpers, user_data
work = tempfile.mkdtemp(prefix="meshstack-cloudinit-")
paths = helpers.Paths({"cloud_dir": work, "run_dir": work})
blob = sys.stdin.buffer.read()
try:
    message = user_data.UserDataProcessor(paths).process(blob)
except Exception as error:
    print(json.dumps({"ok": False, "error": str(error), "retrySleeps": len(retry_sleeps)}))
    sys.exit(0)
finally:
    shutil.rmtree(work, ignore_errors=True)
parts = [
    {"contentType": part.get_content_type(), "payload": base64.b64encode(part.get_payload(decode=True)).decode()}
    for part in message.walk()
    if not part.is_multipart()
]
print(json.dumps({"ok": True, "parts": parts, "retrySleeps": len(retry_sleeps)}))
`;

export interface ProcessedPart {
    /** The MIME type cloud-init assigned, e.g. text/cloud-config. */
    contentType: string;
    payload: Buffer;
}

export type ProcessedUserData =
    | { ok: true; parts: ProcessedPart[]; retrySleeps: number }
    | { ok: false; error: string; retrySleeps: number };

function debianPython(): string {
    if (!fs.existsSync(DEBIAN_PYTHON)) throw new Error(`${DEBIAN_PYTHON} is missing; run scripts/setup.sh (Debian package cloud-init)`);
    return DEBIAN_PYTHON;
}

/** Runs UserDataProcessor.process over the exact bytes a node would receive. */
export async function processUserData(userData: Buffer): Promise<ProcessedUserData> {
    const python = debianPython();
    const child = execFile(python, ["-c", PROCESSOR_SCRIPT], { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout!.on("data", (d) => stdout.push(Buffer.from(d)));
    child.stderr!.on("data", (d) => stderr.push(Buffer.from(d)));
    const exit = new Promise<number | null>((resolve) => child.on("close", resolve));
    child.stdin!.end(userData);
    const code = await exit;
    if (code !== 0) throw new Error(`UserDataProcessor helper exited ${code}: ${Buffer.concat(stderr).toString()}`);
    const result = JSON.parse(Buffer.concat(stdout).toString());
    if (!result.ok) return result;
    return {
        ok: true,
        retrySleeps: result.retrySleeps,
        parts: result.parts.map((p: { contentType: string; payload: string }) => ({ contentType: p.contentType, payload: Buffer.from(p.payload, "base64") })),
    };
}

export interface SchemaResult {
    valid: boolean;
    /** What cloud-init printed (stdout and stderr). */
    output: string;
}

/** `cloud-init schema --config-file` over the given text. */
export async function cloudInitSchema(text: string): Promise<SchemaResult> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-schema-"));
    const file = path.join(dir, "user-data");
    fs.writeFileSync(file, text);
    try {
        const { stdout, stderr } = await run(toolPath("cloud-init"), ["schema", "--config-file", file], { timeout: 60_000 });
        return { valid: true, output: stdout + stderr };
    } catch (err) {
        const failure = err as { code?: number; stdout?: string; stderr?: string };
        if (typeof failure.code !== "number") throw err;
        return { valid: false, output: `${failure.stdout ?? ""}${failure.stderr ?? ""}` };
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/**
 * `cloud-init schema` over a cloud-config and shellcheck over every script
 * it writes; throws with their output. `dir` holds the scripts while checked.
 */
export async function assertValidCloudConfig(text: string, dir: string): Promise<void> {
    const schema = await cloudInitSchema(text);
    if (!schema.valid) throw new Error(`cloud-init schema rejected the cloud-config:\n${schema.output}`);
    const doc = YAML.parse(text) as { write_files?: { path: string; content: string }[] };
    // The agent's renderer is python: shellcheck judges shell scripts only.
    const scripts = (doc.write_files ?? []).filter((f) => /^#!\S*\b(ba|da)?sh\b/.test(f.content.split("\n")[0]));
    if (scripts.length === 0) throw new Error("the cloud-config carries no script");
    for (const script of scripts) {
        const scriptFile = path.join(dir, `${path.basename(script.path)}-${crypto.randomUUID()}.sh`);
        fs.writeFileSync(scriptFile, script.content);
        await run(toolPath("shellcheck"), [scriptFile]).catch((e) => {
            throw new Error(`shellcheck found problems in ${script.path}:\n${e.stdout}${e.stderr}`);
        });
    }
}

const PADDING_HEADER = "#cloud-config\nwrite_files:\n  - path: /etc/meshstack/padding\n    permissions: \"0600\"\n    content: |\n";
const PADDING_INDENT = "      ";
const PADDING_LINE_CHARS = 76;

/** Deterministic filler: repetitive text (compresses well) or base64 of a hash chain (barely compresses). */
function filler(length: number, kind: "compressible" | "incompressible"): string {
    if (kind === "compressible") return "meshstack-bootstrap-padding-".repeat(Math.ceil(length / 28)).slice(0, length);
    let text = "";
    let block = Buffer.from("meshstack");
    while (text.length < length) {
        block = crypto.createHash("sha512").update(block).digest();
        text += block.toString("base64").replace(/[+/=]/g, "x");
    }
    return text.slice(0, length);
}

/**
 * A valid cloud-config of exactly `bytes` UTF-8 bytes: one write_files
 * entry whose block-literal content is the filler, 76 characters a line.
 */
export function cloudConfigOfBytes(bytes: number, kind: "compressible" | "incompressible"): string {
    const overhead = PADDING_INDENT.length + 1;
    const bodyBytes = bytes - PADDING_HEADER.length;
    if (bodyBytes < overhead + 1) throw new Error(`cloudConfigOfBytes needs at least ${PADDING_HEADER.length + overhead + 1} bytes`);
    const chars = filler(bodyBytes, kind);
    const lines: string[] = [];
    let left = bodyBytes;
    let offset = 0;
    while (left > 0) {
        // Leave a last line of at least one character.
        let take = Math.min(PADDING_LINE_CHARS, left - overhead);
        if (left - overhead - take > 0 && left - overhead - take < overhead + 1) take -= overhead + 1;
        lines.push(PADDING_INDENT + chars.slice(offset, offset + take) + "\n");
        offset += take;
        left -= take + overhead;
    }
    const text = PADDING_HEADER + lines.join("");
    if (Buffer.byteLength(text, "utf8") !== bytes) throw new Error(`cloudConfigOfBytes built ${Buffer.byteLength(text)} bytes, wanted ${bytes}`);
    return text;
}
