/**
 * Reading a container's config as Proxmox VE answers it: the live config of
 * GET .../config, typed by the API schema, and the archived config file
 * extractconfig returns. Property strings (`volume,key=value,...`) and size
 * strings ("8G") are read the way pve-common writes them.
 *
 * Captured by value into serialized providers: plain functions only.
 */

/** Proxmox's property strings: `key=value,key=value`, a bare item being the default key's value. */
export function parseProperties(text: string, defaultKey: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const part of (text ?? "").split(",")) {
        const eq = part.indexOf("=");
        if (eq < 0) out[defaultKey] = part;
        else out[part.slice(0, eq)] = part.slice(eq + 1);
    }
    return out;
}

/** A size string ("8G", "512M", "1T", bytes without a unit) in GiB; 0 when it is not one. */
export function sizeGiB(size: string | undefined): number {
    const m = /^(\d+(?:\.\d+)?)([KMGT]?)$/.exec(size ?? "");
    if (!m) return 0;
    const factor = { "": 1 / 1024 ** 3, K: 1 / 1024 ** 2, M: 1 / 1024, G: 1, T: 1024 }[m[2] as "" | "K" | "M" | "G" | "T"];
    return Number(m[1]) * factor;
}

/** netN -> its MAC (hwaddr), upper case; "" for a netN without one. */
export function macsOf(config: Record<string, string>): Record<string, string> {
    const macs: Record<string, string> = {};
    for (const key of Object.keys(config).filter((k) => /^net\d+$/.test(k)).sort()) {
        macs[key] = (parseProperties(config[key], "name").hwaddr ?? "").toUpperCase();
    }
    return macs;
}

/** mpN -> its mount path and size. */
export function mountPointsOf(config: Record<string, string>): Record<string, { path: string; sizeGiB: number }> {
    const mps: Record<string, { path: string; sizeGiB: number }> = {};
    for (const key of Object.keys(config).filter((k) => /^mp\d+$/.test(k))) {
        const mp = parseProperties(config[key], "volume");
        mps[key] = { path: mp.mp ?? "", sizeGiB: sizeGiB(mp.size) };
    }
    return mps;
}

/** extractconfig answers with the archived config file: `#` comment lines (the description) and `key: value` lines. */
export function parseArchivedConfig(text: string): { description: string; config: Record<string, string> } {
    const description: string[] = [];
    const config: Record<string, string> = {};
    for (const line of String(text ?? "").split("\n")) {
        if (line.startsWith("#")) {
            let decoded = line.slice(1);
            try {
                decoded = decodeURIComponent(decoded);
            } catch {
                // Not percent-encoded: keep as is.
            }
            description.push(decoded);
        } else if (/^\[/.test(line)) {
            break; // snapshot sections follow the current config
        } else if (line.includes(": ")) {
            config[line.slice(0, line.indexOf(": "))] = line.slice(line.indexOf(": ") + 2);
        }
    }
    return { description: description.join("\n"), config };
}

/** The keys of GET .../config the provider reads as text: their schema type is `string`. */
const CONFIG_STRING_KEY = /^(digest|hostname|lock|rootfs|net\d+|mp\d+)$/;

/**
 * GET .../config read by the API schema's types: PVE's JSON carries a
 * `boolean` as the integer 0 or 1 and an `integer` as a number, never as
 * text. A value of another type is refused, naming the key, the value and
 * what the schema allows, instead of being read as a different setting.
 */
export function readLxcConfig(data: unknown): { strings: Record<string, string>; onboot: boolean } {
    const config = (data && typeof data === "object" ? data : {}) as Record<string, unknown>;
    const refuse = (key: string, allowed: string) =>
        new Error(`Proxmox VE answered the container config's ${key} with ${JSON.stringify(config[key])}; its API schema allows ${allowed}`);
    const strings: Record<string, string> = {};
    for (const [key, value] of Object.entries(config)) {
        if (!CONFIG_STRING_KEY.test(key)) continue;
        if (typeof value !== "string") throw refuse(key, "a string");
        strings[key] = value;
    }
    // onboot defaults to 0 when the config does not set it.
    if (config.onboot !== undefined && config.onboot !== 0 && config.onboot !== 1) throw refuse("onboot", "the integers 0 and 1 (a boolean)");
    return { strings, onboot: config.onboot === 1 };
}
