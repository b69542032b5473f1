/**
 * Pure pieces of the offline plan: reading a stack file into raw config,
 * redacting secrets from recorded inputs, pulling rendered artifacts out of
 * user-data, and drawing the component topology. scripts/plan.ts runs the
 * program under the mock cloud and feeds these.
 */
import * as zlib from "zlib";
import * as YAML from "yaml";
import { isRpcSecret, RecordedResource, unwrapSecrets } from "./mockCloud";
import type { CheckedResource } from "../policy/rules";

const SECRET_MARK = "[secret]";
const BOOTSTRAP_OBJECT_TYPE = "pulumi-nodejs:dynamic/meshstack:BootstrapObject";

/** Inputs with every secret replaced by a marker and serialized providers summarized. */
export function redactInputs(value: unknown, key?: string): unknown {
    if (isRpcSecret(value)) return SECRET_MARK;
    if (key === "__provider" && typeof value === "string") return `[serialized dynamic provider, ${value.length} bytes]`;
    if (Array.isArray(value)) return value.map((v) => redactInputs(v));
    if (value && typeof value === "object") {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactInputs(v, k)]));
    }
    return value;
}

export interface Artifact {
    /** Relative path under out/<stack>/artifacts/. */
    path: string;
    content: string;
}

function safeSegment(text: string): string {
    return text.replace(/^\/+/, "").replace(/[^A-Za-z0-9._/-]+/g, "_").replace(/\.\.+/g, "_");
}

const INSTANCE_TYPE = "linode:index/instance:Instance";

/** The user-data bytes Linode Metadata hands a recorded instance (base64-decoded; gzip stays gzip). */
export function instanceUserData(instance: RecordedResource): Buffer | undefined {
    const metadatas = unwrapSecrets(instance.inputs.metadatas) as { userData?: unknown }[] | undefined;
    const userData = metadatas?.[0]?.userData;
    return typeof userData === "string" ? Buffer.from(userData, "base64") : undefined;
}

/** Delivered user-data as text, gunzipped when it was gzipped. */
export function decodeUserData(bytes: Buffer): { text: string; gzipped: boolean } {
    const gzipped = bytes[0] === 0x1f && bytes[1] === 0x8b;
    return { text: (gzipped ? zlib.gunzipSync(bytes) : bytes).toString("utf8"), gzipped };
}

interface WriteFile {
    path: string;
    content?: string;
    encoding?: string;
}

function writeFileContent(file: WriteFile): string {
    const content = file.content ?? "";
    switch (file.encoding) {
        case "b64":
        case "base64":
            return Buffer.from(content, "base64").toString("utf8");
        case "gz+b64":
        case "gzip+base64":
        case "gz+base64":
            return zlib.gunzipSync(Buffer.from(content, "base64")).toString("utf8");
        default:
            return content;
    }
}

/** A cloud-config and each file it writes, as separate artifacts. */
export function cloudConfigArtifacts(dir: string, cloudConfig: string): Artifact[] {
    const artifacts: Artifact[] = [{ path: `${dir}/cloud-config.yaml`, content: cloudConfig }];
    const doc = YAML.parse(cloudConfig) as { write_files?: WriteFile[] } | null;
    for (const file of doc?.write_files ?? []) {
        artifacts.push({ path: `${dir}/files/${safeSegment(file.path)}`, content: writeFileContent(file) });
    }
    return artifacts;
}

/**
 * Every rendered artifact the program produced: each instance's delivered
 * user-data, and every cloud-config (inline, or stored in the bucket behind
 * an #include pointer) with the files it writes.
 */
export function extractArtifacts(resources: RecordedResource[]): Artifact[] {
    const artifacts: Artifact[] = [];
    for (const resource of resources) {
        const dir = safeSegment(resource.name);
        if (resource.type === INSTANCE_TYPE) {
            const userData = instanceUserData(resource);
            if (!userData) continue;
            const { text, gzipped } = decodeUserData(userData);
            artifacts.push({ path: `${dir}/user-data${gzipped ? ".gunzipped" : ""}.txt`, content: text });
            if (text.startsWith("#cloud-config")) artifacts.push(...cloudConfigArtifacts(dir, text).slice(1));
            continue;
        }
        // The bucket copy exists only for nodes delivered by #include pointer;
        // otherwise the instance's own user-data above is the artifact.
        if (resource.type === BOOTSTRAP_OBJECT_TYPE && unwrapSecrets(resource.inputs.store) === true) {
            const content = unwrapSecrets(resource.inputs.content);
            if (typeof content === "string") artifacts.push(...cloudConfigArtifacts(`${dir}/stored`, content));
        }
    }
    return artifacts;
}

function mermaidId(name: string): string {
    return name.replace(/[^A-Za-z0-9_]/g, "_");
}

function shortType(type: string): string {
    // linode:index/objectStorageBucket:ObjectStorageBucket -> linode:ObjectStorageBucket
    const [pkg, , member] = type.split(":");
    return `${pkg.replace(/^pulumi-nodejs$/, "dynamic")}:${member ?? type}`;
}

/**
 * A Mermaid flowchart: components as nested subgraphs holding their
 * resources, and one edge per pair of top-level components where one's
 * inputs use the other's outputs.
 */
export function topologyMermaid(resources: RecordedResource[]): string {
    const byName = new Map(resources.map((r) => [r.name, r]));
    const children = new Map<string | undefined, RecordedResource[]>();
    for (const r of resources) {
        const parent = r.parent && byName.has(r.parent) ? r.parent : undefined;
        children.set(parent, [...(children.get(parent) ?? []), r]);
    }
    const topLevel = (name: string): string => {
        let current = byName.get(name);
        while (current?.parent && byName.has(current.parent)) current = byName.get(current.parent);
        return current?.name ?? name;
    };
    const lines = ["flowchart LR"];
    const render = (parent: string | undefined, indent: string) => {
        for (const r of children.get(parent) ?? []) {
            const label = `${shortType(r.type)}<br/>${r.name}`;
            if (!r.custom) {
                lines.push(`${indent}subgraph ${mermaidId(r.name)}["${label}"]`);
                render(r.name, indent + "  ");
                lines.push(`${indent}end`);
            } else {
                lines.push(`${indent}${mermaidId(r.name)}["${label}"]`);
            }
        }
    };
    render(undefined, "  ");
    const edges = new Set<string>();
    for (const r of resources) {
        for (const dep of r.dependencies) {
            if (!byName.has(dep)) continue;
            const [from, to] = [topLevel(r.name), topLevel(dep)];
            if (from !== to) edges.add(`  ${mermaidId(from)} -->|uses| ${mermaidId(to)}`);
        }
    }
    return [...lines, ...[...edges].sort()].join("\n") + "\n";
}

/**
 * Recorded resources as a policy pack sees them: inputs with secrets
 * unwrapped, and a URN naming the stack (the prod rule reads it there).
 */
export function policyResources(project: string, stack: string, resources: RecordedResource[]): CheckedResource[] {
    return resources.filter((r) => r.custom).map((r) => ({
        type: r.type,
        name: r.name,
        urn: `urn:pulumi:${stack}::${project}::${r.type}::${r.name}`,
        props: unwrapSecrets(r.inputs),
        opts: r.options ?? { protect: false, additionalSecretOutputs: [] },
        propertyDependencies: Object.fromEntries(Object.entries(r.propertyDependencies ?? {}).map(([key, names]) => [key, [...names].sort()])),
    }));
}

/** The variables an s3-kind program reads its keys from (lib/pulumiConfig.ts). */
export const S3_CREDENTIAL_VARIABLES = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MESHSTACK_AGENT_ACCESS_KEY_ID", "MESHSTACK_AGENT_SECRET_ACCESS_KEY"];

/**
 * An s3-kind program reads its keys from the environment, but the offline
 * plan signs and stores nothing: unset variables get stand-ins, so the plan
 * needs no credentials. Set ones are kept (they stay secrets in the plan's
 * output either way). Returns the names it filled in.
 */
export function withOfflineS3Credentials(env: NodeJS.ProcessEnv): string[] {
    const filled = S3_CREDENTIAL_VARIABLES.filter((name) => !env[name]);
    for (const name of filled) env[name] = "offline-plan-stand-in";
    return filled;
}
