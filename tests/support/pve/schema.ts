/**
 * Checks a Proxmox VE API reply against the API schema Proxmox publishes
 * (tests/contracts/pve-api-lxc.json, cut from pve-docs' apidata.js), so the
 * emulator is held to the vendor's contract instead of to our own reading.
 *
 * What is checked, as pve-common's JSONSchema means it:
 * - `boolean` is the JSON integer 0 or 1, `integer` a whole JSON number,
 *   `number` a JSON number; `enum`, `pattern` (anchored), `minimum`,
 *   `maximum`; required (not `optional`) properties; where an object's
 *   properties are listed, no property they do not name (`net[n]` names
 *   net0, net1, ...) unless it allows more.
 * - Property strings (`format` given as an object: net[n], rootfs, mp[n],
 *   features): every key is one the format names, booleans are 0/1,
 *   integers digits, enums within their list.
 * - The envelope: success is exactly `{"data": ...}` with 200 OK; an error is
 *   `{"data": null}` plus, for a parameter error (400 "Parameter
 *   verification failed."), a non-empty `errors` object of strings and only
 *   then; the message is in the reason phrase, never in the body.
 */
import * as fs from "fs";
import * as path from "path";

export interface PveSchemaNode {
    type?: string;
    optional?: number;
    enum?: string[];
    pattern?: string;
    minimum?: number;
    maximum?: number;
    properties?: Record<string, PveSchemaNode>;
    additionalProperties?: number | PveSchemaNode;
    items?: PveSchemaNode;
    format?: string | Record<string, PveSchemaNode & { default_key?: number; alias?: string }>;
}

export interface PveSchema {
    paths: Record<string, Record<string, { returns: PveSchemaNode }>>;
}

export interface PveReplySeen {
    method: string;
    /** Below /api2/json, decoded. */
    path: string;
    status: number;
    reason: string;
    body: unknown;
}

export const PVE_SCHEMA_FILE = path.join(__dirname, "..", "..", "contracts", "pve-api-lxc.json");

export function loadPveSchema(file = PVE_SCHEMA_FILE): PveSchema {
    return JSON.parse(fs.readFileSync(file, "utf8")) as PveSchema;
}

/** The schema's path template ("/nodes/{node}/lxc/{vmid}/config") for an API path, or undefined. */
export function schemaPathOf(schema: PveSchema, method: string, apiPath: string): string | undefined {
    return Object.keys(schema.paths).find((template) => {
        const re = new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+")}$`);
        return re.test(apiPath) && schema.paths[template][method] !== undefined;
    });
}

/** pve-common writes patterns as Perl's `(?^:...)`; they match the whole value. */
function patternOf(pattern: string): RegExp {
    const body = /^\(\?\^:(.*)\)$/s.exec(pattern)?.[1] ?? pattern;
    return new RegExp(`^(?:${body})$`, "s");
}

function propertySchema(properties: Record<string, PveSchemaNode>, key: string): PveSchemaNode | undefined {
    if (properties[key]) return properties[key];
    const indexed = Object.keys(properties).find((name) => name.endsWith("[n]") && new RegExp(`^${name.slice(0, -3)}\\d+$`).test(key));
    return indexed ? properties[indexed] : undefined;
}

/** Problems of a property string (`key=value,...`) against its format object. */
function propertyStringProblems(format: Record<string, PveSchemaNode & { default_key?: number; alias?: string }>, text: string, where: string): string[] {
    const problems: string[] = [];
    const defaultKey = Object.keys(format).find((k) => format[k].default_key);
    for (const part of text.split(",")) {
        const eq = part.indexOf("=");
        const key = eq < 0 ? defaultKey : part.slice(0, eq);
        const value = eq < 0 ? part : part.slice(eq + 1);
        const spec = key === undefined ? undefined : format[key];
        if (!spec) {
            problems.push(`${where}: "${part}" is not a key the format names (${Object.keys(format).join(", ")})`);
            continue;
        }
        const at = `${where}.${key}`;
        if (spec.type === "boolean" && !/^[01]$/.test(value)) problems.push(`${at}: ${JSON.stringify(value)} is not a boolean (0 or 1)`);
        if (spec.type === "integer" && !/^-?\d+$/.test(value)) problems.push(`${at}: ${JSON.stringify(value)} is not an integer`);
        if (spec.enum && !spec.enum.includes(value)) problems.push(`${at}: ${JSON.stringify(value)} is not one of ${spec.enum.join(", ")}`);
    }
    return problems;
}

/** Problems of a value (`data` of a reply) against a `returns` schema; [] when it conforms. */
export function valueProblems(schema: PveSchemaNode, value: unknown, where = "data"): string[] {
    const got = JSON.stringify(value);
    switch (schema.type) {
        case "null":
            return value === null ? [] : [`${where}: ${got} is not null`];
        case "boolean":
            // PVE's JSON encodes a boolean as the integer 0 or 1.
            return value === 0 || value === 1 ? [] : [`${where}: ${got} is not a boolean (the integer 0 or 1)`];
        case "integer":
        case "number": {
            if (typeof value !== "number" || !Number.isFinite(value) || (schema.type === "integer" && !Number.isInteger(value))) {
                return [`${where}: ${got} is not ${schema.type === "integer" ? "an integer" : "a number"}`];
            }
            const problems: string[] = [];
            if (schema.minimum !== undefined && value < Number(schema.minimum)) problems.push(`${where}: ${value} is below the minimum ${schema.minimum}`);
            if (schema.maximum !== undefined && value > Number(schema.maximum)) problems.push(`${where}: ${value} is above the maximum ${schema.maximum}`);
            return problems;
        }
        case "string": {
            if (typeof value !== "string") return [`${where}: ${got} is not a string`];
            const problems: string[] = [];
            if (schema.enum && !schema.enum.includes(value)) problems.push(`${where}: ${got} is not one of ${schema.enum.join(", ")}`);
            if (schema.pattern && !patternOf(schema.pattern).test(value)) problems.push(`${where}: ${got} does not match ${schema.pattern}`);
            if (schema.format && typeof schema.format === "object") problems.push(...propertyStringProblems(schema.format, value, where));
            return problems;
        }
        case "array":
            if (!Array.isArray(value)) return [`${where}: ${got} is not an array`];
            return schema.items ? value.flatMap((item, i) => valueProblems(schema.items!, item, `${where}[${i}]`)) : [];
        case "object": {
            if (!value || typeof value !== "object" || Array.isArray(value)) return [`${where}: ${got} is not an object`];
            const object = value as Record<string, unknown>;
            const properties = schema.properties ?? {};
            const problems: string[] = [];
            for (const [key, spec] of Object.entries(properties)) {
                if (!key.endsWith("[n]") && !spec.optional && object[key] === undefined) problems.push(`${where}.${key}: required, missing`);
            }
            for (const [key, item] of Object.entries(object)) {
                const spec = propertySchema(properties, key);
                if (spec) problems.push(...valueProblems(spec, item, `${where}.${key}`));
                // An object the schema gives no properties for (status/current's ha) is not specified further.
                else if (schema.properties && !schema.additionalProperties) problems.push(`${where}.${key}: not a property the schema names`);
            }
            return problems;
        }
        default:
            return schema.type === undefined ? [] : [`${where}: schema type ${schema.type} is not understood here`];
    }
}

/** Problems of one whole reply: envelope, status, reason and, for success, `data` against the endpoint's `returns`. */
export function replyProblems(schema: PveSchema, reply: PveReplySeen): string[] {
    const where = `${reply.method} ${reply.path} (${reply.status})`;
    const body = reply.body as Record<string, unknown> | null;
    if (!body || typeof body !== "object" || Array.isArray(body)) return [`${where}: body ${JSON.stringify(body)} is not a JSON object`];
    const keys = Object.keys(body).sort();
    if (reply.status >= 200 && reply.status < 300) {
        const problems: string[] = [];
        if (reply.status !== 200 || reply.reason !== "OK") problems.push(`${where}: success is 200 OK, got ${reply.status} ${reply.reason}`);
        if (keys.join() !== "data") problems.push(`${where}: success body has keys ${keys.join(", ")}; allowed: data`);
        const template = schemaPathOf(schema, reply.method, reply.path);
        if (!template) return [...problems, `${where}: no such endpoint in the published schema`];
        return [...problems, ...valueProblems(schema.paths[template][reply.method].returns, body.data).map((p) => `${where} [${reply.method} ${template}]: ${p}`)];
    }
    const problems: string[] = [];
    if (body.data !== null) problems.push(`${where}: an error's data is ${JSON.stringify(body.data)}, not null`);
    if (keys.some((k) => k !== "data" && k !== "errors")) problems.push(`${where}: error body has keys ${keys.join(", ")}; allowed: data, errors`);
    if (!reply.reason.trim()) problems.push(`${where}: an error carries its message in the reason phrase, got none`);
    const parameterError = reply.status === 400 && reply.reason === "Parameter verification failed.";
    const errors = body.errors as Record<string, unknown> | undefined;
    if (parameterError) {
        if (!errors || typeof errors !== "object" || !Object.keys(errors).length) problems.push(`${where}: a parameter error names its parameters in errors, got ${JSON.stringify(errors)}`);
        else for (const [key, message] of Object.entries(errors)) if (typeof message !== "string") problems.push(`${where}: errors.${key} is ${JSON.stringify(message)}, not a string`);
    } else if (errors !== undefined) {
        problems.push(`${where}: errors belongs to 400 "Parameter verification failed." only, got it with ${reply.status} ${reply.reason}`);
    }
    return problems;
}
