/**
 * The text formats of Proxmox VE's config files and API as pve-common reads
 * and writes them: property strings, size strings, the config file with its
 * description as comment lines, and GET .../config's values typed by the
 * API schema.
 */
import * as crypto from "crypto";

/** The MAC prefix Proxmox VE gives generated addresses. */
export function randomMac(): string {
    const bytes = crypto.randomBytes(3);
    return ["BC", "24", "11", ...[...bytes].map((b) => b.toString(16).toUpperCase().padStart(2, "0"))].join(":");
}

/** Proxmox's property strings: `key=value,key=value`, the first bare item being the default key. */
export function parsePropertyString(text: string, defaultKey?: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const part of text.split(",")) {
        const eq = part.indexOf("=");
        if (eq < 0 && defaultKey) out[defaultKey] = part;
        else if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
    }
    return out;
}

export function printPropertyString(props: Record<string, string>, defaultKey?: string): string {
    const parts = Object.entries(props).map(([k, v]) => (k === defaultKey ? v : `${k}=${v}`));
    if (defaultKey && props[defaultKey] !== undefined) {
        return [props[defaultKey], ...Object.entries(props).filter(([k]) => k !== defaultKey).map(([k, v]) => `${k}=${v}`)].join(",");
    }
    return parts.join(",");
}

/** Size strings as pve-common parses them ("8G", "512M", "1T"), in bytes. */
export function parseSize(text: string): number | undefined {
    const m = /^(\d+(?:\.\d+)?)([KMGT]?)$/.exec(text);
    if (!m) return undefined;
    const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2] as "" | "K" | "M" | "G" | "T"];
    return Math.round(Number(m[1]) * unit);
}

export function formatSize(bytes: number): string {
    for (const [unit, factor] of [["T", 1024 ** 4], ["G", 1024 ** 3], ["M", 1024 ** 2], ["K", 1024]] as const) {
        if (bytes % factor === 0) return `${bytes / factor}${unit}`;
    }
    return String(bytes);
}

/**
 * Config keys whose API schema type is not `string`: pve-container parses
 * the config file by its schema, so GET .../config answers these as JSON
 * numbers (a `boolean` as the integer 0 or 1), never as text.
 */
const CONFIG_BOOLEANS = new Set(["console", "debug", "onboot", "protection", "template", "unprivileged"]);
const CONFIG_INTEGERS = new Set(["cores", "cpuunits", "memory", "swap", "tty"]);
const CONFIG_NUMBERS = new Set(["cpulimit"]);

/** The config as GET .../config answers it: file text values typed by the schema. */
export function typedConfig(config: Record<string, string>): Record<string, string | number> {
    const typed: Record<string, string | number> = {};
    for (const [key, value] of Object.entries(config)) {
        if (CONFIG_BOOLEANS.has(key)) typed[key] = /^(1|true|yes|on)$/i.test(value) ? 1 : 0;
        else if (CONFIG_INTEGERS.has(key)) typed[key] = parseInt(value, 10);
        else if (CONFIG_NUMBERS.has(key)) typed[key] = Number(value);
        else typed[key] = value;
    }
    return typed;
}

/** The config file's text, as extractconfig and the digest see it. */
export function configText(config: Record<string, string>): string {
    const description = config.description
        ? config.description.split("\n").map((line) => `#${encodeURIComponent(line).replace(/%20/g, " ")}\n`).join("")
        : "";
    const body = Object.entries(config).filter(([k]) => k !== "description").map(([k, v]) => `${k}: ${v}\n`).join("");
    return description + body;
}
