/**
 * A stand-in cloud for Pulumi's mock runtime, shared by the unit tests and
 * the offline plan. It answers each resource registration with plausible
 * provider outputs (addresses, endpoints, keys) so components that compute
 * on outputs run the same code paths as in a real `pulumi up`, and it records
 * what was registered, with parent and dependencies, for assertions and for
 * the plan's resource list and topology diagram. Before it answers, it
 * refuses what the pinned Linode provider refuses at preview and what the
 * Linode API refuses at create (lib/linodeLimits.ts), as the engine would.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { apiInputProblems, providerInputProblems } from "../lib/linodeLimits";
import { UNKNOWN } from "../providers/unknowns";

export const RPC_SECRET_KEY = "4dabf18193072939515e22adb298388d";
export const RPC_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface RecordedResource {
    type: string;
    name: string;
    /** Name of the parent resource, when it has one. */
    parent?: string;
    /**
     * Names of resources whose outputs this resource's inputs use, plus
     * explicit dependsOn. Filled as outputs resolve: read it after the program settles.
     */
    dependencies: ReadonlySet<string>;
    /** Per input, the names of the resources whose outputs feed it (what the engine sends a stack policy). Filled as outputs resolve. */
    propertyDependencies?: Readonly<Record<string, ReadonlySet<string>>>;
    /** Inputs as the engine sees them; secrets remain wrapped (see isRpcSecret). */
    inputs: Record<string, unknown>;
    /** The mock state returned as outputs. */
    outputs: Record<string, unknown>;
    custom: boolean;
    /** The resource options a policy pack sees. */
    options?: RecordedOptions;
}

export interface RecordedOptions {
    protect: boolean;
    additionalSecretOutputs: string[];
    /** The old resource goes before its replacement is created. */
    deleteBeforeReplace?: boolean;
    /** Inputs the engine keeps at their last applied value when the program changes them. */
    ignoreChanges?: string[];
}

export function isRpcSecret(value: unknown): value is { value: unknown } {
    return typeof value === "object" && value !== null && (value as Record<string, unknown>)[RPC_SECRET_KEY] === RPC_SECRET_SIG;
}

/** Deterministic stand-in for a random value, so plans and tests are repeatable. */
function fakeToken(seed: string, length: number, alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"): string {
    const bytes = crypto.createHash("sha256").update(seed).digest();
    return Array.from({ length }, (_, i) => alphabet[bytes[i % bytes.length] % alphabet.length]).join("");
}

/** The value with every RPC secret wrapper removed, at any depth: what a provider sees. */
export function unwrapSecrets(value: unknown): any {
    if (isRpcSecret(value)) return unwrapSecrets(value.value);
    if (Array.isArray(value)) return value.map(unwrapSecrets);
    if (value && typeof value === "object") {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)]));
    }
    return value;
}

function fakeIpv4(seed: string, base: string): string {
    const bytes = crypto.createHash("sha256").update(seed).digest();
    return `${base}.${(bytes[0] % 250) + 2}`;
}

/**
 * DER sizes of ECDSA P-256 material as @pulumi/tls makes it, so user-data
 * sizes in the offline plan (and the delivery choice) match a real deploy.
 */
const DER_BYTES = { certificate: 560, privateKey: 121, publicKey: 91, certRequest: 300 } as const;

function fakePem(label: string, seed: string, derBytes: number): string {
    const der = Buffer.alloc(derBytes);
    for (let offset = 0; offset < derBytes; offset += 32) {
        crypto.createHash("sha256").update(`${seed}:${offset}`).digest().copy(der, offset);
    }
    const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
    return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** Computes the outputs a provider would add to a resource's inputs. */
type OutputFaker = (name: string, inputs: Record<string, any>) => Record<string, unknown>;

/** One faker per resource type; a new resource type adds its entry here. */
const FAKE_OUTPUTS: Record<string, OutputFaker> = {
    "linode:index/instance:Instance": (name) => {
        const publicIp = fakeIpv4(name, "203.0.113");
        const privateIp = fakeIpv4(name, "192.168.139");
        return { ipv4s: [privateIp, publicIp], ipAddress: publicIp, privateIpAddress: privateIp, status: "running" };
    },
    "linode:index/objectStorageBucket:ObjectStorageBucket": (_name, inputs) => ({
        endpoint: `${unwrapSecrets(inputs.region)}-1.linodeobjects.com`,
        hostname: `${unwrapSecrets(inputs.label)}.${unwrapSecrets(inputs.region)}-1.linodeobjects.com`,
    }),
    "linode:index/objectStorageKey:ObjectStorageKey": (name) => ({
        accessKey: fakeToken(`${name}-access`, 20, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
        secretKey: fakeToken(`${name}-secret`, 40),
    }),
    "linode:index/firewall:Firewall": () => ({}),
    "random:index/randomString:RandomString": (name, inputs) => ({ result: fakeToken(name, Number(unwrapSecrets(inputs.length) ?? 16)) }),
    "random:index/randomPassword:RandomPassword": (name, inputs) => ({ result: fakeToken(name, Number(unwrapSecrets(inputs.length) ?? 32)) }),
    "random:index/randomId:RandomId": (name) => ({ hex: fakeToken(name, 16, "0123456789abcdef"), b64Url: fakeToken(name, 11) }),
    "random:index/randomBytes:RandomBytes": (name, inputs) => {
        const bytes = Buffer.alloc(Number(unwrapSecrets(inputs.length)));
        for (let block = 0; block * 32 < bytes.length; block++) crypto.createHash("sha256").update(`${name}-bytes-${block}`).digest().copy(bytes, block * 32);
        return { base64: bytes.toString("base64"), hex: bytes.toString("hex") };
    },
    "tls:index/privateKey:PrivateKey": (name) => ({
        privateKeyPem: fakePem("EC PRIVATE KEY", name, DER_BYTES.privateKey),
        publicKeyPem: fakePem("PUBLIC KEY", name, DER_BYTES.publicKey),
    }),
    "tls:index/selfSignedCert:SelfSignedCert": (name) => ({
        certPem: fakePem("CERTIFICATE", name, DER_BYTES.certificate),
    }),
    "tls:index/locallySignedCert:LocallySignedCert": (name) => ({
        certPem: fakePem("CERTIFICATE", name, DER_BYTES.certificate),
    }),
    "tls:index/certRequest:CertRequest": (name) => ({
        certRequestPem: fakePem("CERTIFICATE REQUEST", name, DER_BYTES.certRequest),
    }),
    // Shaped like a real SigV4 query so user-data sizes match a deploy.
    "pulumi-nodejs:dynamic/meshstack:PresignedUrl": (name, inputs) => ({
        url: `${unwrapSecrets(inputs.endpoint)}/${unwrapSecrets(inputs.bucket)}/${unwrapSecrets(inputs.key)}?X-Amz-Algorithm=AWS4-HMAC-SHA256` +
            `&X-Amz-Credential=${fakeToken(`${name}-akid`, 20, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")}%2F20260101%2F${unwrapSecrets(inputs.region)}%2Fs3%2Faws4_request` +
            `&X-Amz-Date=20260101T000000Z&X-Amz-Expires=${unwrapSecrets(inputs.expiresInSeconds)}&X-Amz-SignedHeaders=host` +
            `&X-Amz-Signature=${fakeToken(name, 64, "0123456789abcdef")}`,
        signedAt: "2026-01-01T00:00:00.000Z",
        expiresAt: new Date(Date.parse("2026-01-01T00:00:00.000Z") + Number(unwrapSecrets(inputs.expiresInSeconds)) * 1000).toISOString(),
    }),
    "pulumi-nodejs:dynamic/meshstack:JetStreamKv": (_name, inputs) => ({
        streamName: `KV_${unwrapSecrets(inputs.bucket)}`,
        peers: Array.from({ length: Number(unwrapSecrets(inputs.replicas) ?? 1) }, (_, i) => `nats-${i}`),
    }),
    // What a node publishes at first boot: its WireGuard public key and one
    // CSR per requested name, shaped like the real ones so the certificates
    // signed from them and the desired states built on them resolve.
    "pulumi-nodejs:dynamic/meshstack:WgPubkeyPoll": (name, inputs) => ({
        // A well-formed key: base64 of 32 bytes, as `wg pubkey` prints.
        publicKey: crypto.createHash("sha256").update(`${name}-wg-public-key`).digest("base64"),
        requests: Object.fromEntries(Object.keys((unwrapSecrets(inputs.expectedRequests) ?? {}) as Record<string, unknown>).map((request) =>
            [request, fakePem("CERTIFICATE REQUEST", `${name}-${request}`, DER_BYTES.certRequest)])),
        attempts: 7,
        waitedMs: 31_000,
        foundAt: "2026-01-01T00:01:00.000Z",
    }),
    // A desired state as written: its digest is what a later diff compares.
    "pulumi-nodejs:dynamic/meshstack:RuntimeDocument": (_name, inputs) => ({
        contentSha256: crypto.createHash("sha256").update(String(unwrapSecrets(inputs.content) ?? "")).digest("hex"),
        sizeBytes: Buffer.byteLength(String(unwrapSecrets(inputs.content) ?? ""), "utf8"),
        writtenAt: "2026-01-01T00:02:00.000Z",
    }),
    "pulumi-nodejs:dynamic/meshstack:BootstrapObject": (_name, inputs) => ({
        stored: Boolean(unwrapSecrets(inputs.store)),
        contentSha256: crypto.createHash("sha256").update(String(unwrapSecrets(inputs.content) ?? "")).digest("hex"),
        sizeBytes: Buffer.byteLength(String(unwrapSecrets(inputs.content) ?? ""), "utf8"),
    }),
    "pulumi-nodejs:dynamic/meshstack:BootstrapObjectCleanup": (_name, inputs) => ({
        outcome: unwrapSecrets(inputs.stored) ? "deleted" : "nothing-stored",
        detail: unwrapSecrets(inputs.stored) ? `s3://${unwrapSecrets(inputs.bucket)}/${unwrapSecrets(inputs.key)} deleted` : "user-data went inline or gzipped; nothing in the bucket",
    }),
    // The golden build prints the archive's volume id last.
    "command:remote:Command": (name) => ({ stdout: `local:backup/vzdump-lxc-9000-${name}.tar.zst\n`, stderr: "" }),
    "pulumi-nodejs:dynamic/meshstack:GoldenGuest": (name, inputs) => {
        const mac = (seed: string) => ["BC", "24", "11", ...(fakeToken(seed, 6, "0123456789ABCDEF").match(/../g) ?? [])].join(":");
        return {
            archiveMacs: { net0: mac("golden-archive") },
            observed: {
                hostname: unwrapSecrets(inputs.hostname), macs: { net0: mac(name) }, rootfsSizeGiB: Number(unwrapSecrets(inputs.rootfsSizeGiB)) || 8,
                mountPoints: {}, startOnBoot: Boolean(unwrapSecrets(inputs.startOnBoot)), running: true, ipv4: fakeIpv4(name, "192.0.2"),
            },
        };
    },
};

const isSdkUnknown: (value: unknown) => boolean = require("@pulumi/pulumi/output").isUnknown;
const notKnownYet = (value: unknown) => isSdkUnknown(value) || value === UNKNOWN;

/**
 * The engine's refusal of a registration whose inputs the provider's own
 * validation rejects (at preview already), or the Linode API would reject at
 * create, in the words the engine prints:
 * `<type> resource '<name>' has a problem: <the provider's message>`.
 * Values not known yet are skipped, as the provider skips them.
 */
export function inputValidationError(type: string, name: string, inputs: Record<string, unknown>): Error | undefined {
    const plain = unwrapSecrets(inputs);
    const problems = [
        ...providerInputProblems(type, plain, notKnownYet).map((p) => `${type} resource '${name}' has a problem: ${p.message}`),
        ...apiInputProblems(type, plain, notKnownYet).map((p) => `${type} resource '${name}': the Linode API refuses it at create: ${p.message}`),
    ];
    return problems.length ? new Error(problems.join("\n")) : undefined;
}

function fakeId(type: string, name: string): string {
    // Linode ids are numbers; everything else gets a readable id.
    return type.startsWith("linode:") ? String(10_000_000 + parseInt(fakeToken(name, 6, "0123456789"), 10)) : `${name}-id`;
}

export interface MockCloud {
    resources: RecordedResource[];
    /** Tokens of provider functions the program invoked (data sources, account lookups). */
    calls: string[];
    /**
     * Runs a program as `pulumi up` does: inside a root Stack resource,
     * recording parents and dependencies. Resolves with the stack outputs.
     */
    runProgram(init: () => unknown): Promise<Record<string, unknown>>;
    /** The recorded resource with this logical name; throws when absent. */
    byName(name: string): RecordedResource;
    ofType(type: string): RecordedResource[];
}

interface PendingMeta {
    parent?: string;
    dependencies: Set<string>;
    propertyDependencies: Record<string, Set<string>>;
    options: RecordedOptions;
}

const ROOT_STACK_TYPE = "pulumi:pulumi:Stack";
// The runtime exports this from its stack module but not from its index.
const { runInPulumiStack } = require("@pulumi/pulumi/runtime/stack") as { runInPulumiStack: (init: () => Promise<unknown>) => Promise<unknown> };

function observeRegistrations(meta: Map<string, PendingMeta>): void {
    // Legacy stack transformations run inside the SDK (mocks included) and
    // see parent and dependsOn, which the mock monitor does not pass on.
    pulumi.runtime.registerStackTransformation((args) => {
        const dependencies = new Set<string>();
        const dependsOn = args.opts.dependsOn;
        for (const dep of ([] as unknown[]).concat(dependsOn ?? [])) {
            if (dep instanceof pulumi.Resource && resourceName(dep)) dependencies.add(resourceName(dep)!);
        }
        const parent = args.opts.parent;
        const parentName = parent && !(parent as unknown as { [k: string]: unknown }).__pulumiType?.toString().startsWith(ROOT_STACK_TYPE) ? resourceName(parent) : undefined;
        const opts = args.opts as pulumi.CustomResourceOptions;
        const options: RecordedOptions = { protect: opts.protect === true, additionalSecretOutputs: [...(opts.additionalSecretOutputs ?? [])] };
        if (opts.deleteBeforeReplace) options.deleteBeforeReplace = true;
        if (opts.ignoreChanges?.length) options.ignoreChanges = [...opts.ignoreChanges];
        const entry: PendingMeta = { parent: parentName, dependencies, propertyDependencies: {}, options };
        meta.set(args.name, entry);
        void outputDependencies(args.props).then((names) => names.forEach((n) => entry.dependencies.add(n)));
        for (const [key, value] of Object.entries(args.props ?? {})) {
            void outputDependencies(value).then((names) => {
                if (names.length) names.forEach((n) => (entry.propertyDependencies[key] ??= new Set()).add(n));
            });
        }
        return undefined;
    });
}

function resourceName(resource: pulumi.Resource): string | undefined {
    return (resource as unknown as { __name?: string }).__name;
}

async function outputDependencies(value: unknown, seen = new Set<unknown>()): Promise<string[]> {
    if (value === null || typeof value !== "object" || seen.has(value)) return [];
    seen.add(value);
    if (pulumi.Output.isInstance(value)) {
        const resources = await (value as unknown as { allResources?: () => Promise<Set<pulumi.Resource>> }).allResources?.();
        return [...(resources ?? [])].map(resourceName).filter((n): n is string => !!n);
    }
    const nested = await Promise.all(Object.values(value as Record<string, unknown>).map((v) => outputDependencies(v, seen)));
    return nested.flat();
}

/** A resource registration as the mock monitor sees it. */
export interface Registration {
    type: string;
    name: string;
    /** Inputs as registered: secrets wrapped, values not known yet (previews) as the SDK's unknown. */
    inputs: Record<string, any>;
    custom: boolean;
    /** The options the engine acts on when it replaces (deleteBeforeReplace) or deletes (protect). */
    options?: RecordedOptions;
}

/** The mock cloud's own answer: the inputs plus faked provider outputs (`computed` names them). */
export interface FakedAnswer {
    id: string;
    state: Record<string, unknown>;
    computed: string[];
}

/** What the engine answers a registration with; an undefined id is an id not known yet (a preview). */
export interface ResourceAnswer {
    id?: string;
    state: Record<string, unknown>;
}

/**
 * Installs the mock runtime with the given stack config. Call before the
 * program (or component under test) is imported or constructed.
 */
export async function startMockCloud(options: {
    project: string;
    stack: string;
    config?: Record<string, string>;
    secretKeys?: string[];
    preview?: boolean;
    /**
     * Replaces the faked answer, e.g. with unknowns for what a provider
     * computes on create (a preview of a fresh stack) or with a previous
     * `up`'s outputs (a preview of a change). Default: the faked answer.
     */
    answer?: (registration: Registration, faked: FakedAnswer) => ResourceAnswer | Promise<ResourceAnswer>;
}): Promise<MockCloud> {
    pulumi.runtime.setAllConfig(options.config ?? {}, options.secretKeys ?? []);
    const resources: RecordedResource[] = [];
    const calls: string[] = [];
    const meta = new Map<string, PendingMeta>();

    await pulumi.runtime.setMocks(
        {
            async newResource(args) {
                if (args.type === ROOT_STACK_TYPE) return { id: `${args.name}-id`, state: {} };
                // Before anything answers: the real engine stops here, at preview, for every stack that uses this tool.
                const refused = inputValidationError(args.type, args.name, args.inputs);
                if (refused) throw refused;
                const faker = FAKE_OUTPUTS[args.type];
                const computed = faker ? faker(args.name, args.inputs) : {};
                const faked: FakedAnswer = {
                    id: args.id || fakeId(args.type, args.name),
                    state: { ...args.inputs, ...computed },
                    computed: Object.keys(computed),
                };
                const info = meta.get(args.name);
                const registration: Registration = { type: args.type, name: args.name, inputs: args.inputs, custom: args.custom ?? true, options: info?.options };
                const answer = options.answer ? await options.answer(registration, faked) : faked;
                resources.push({
                    type: args.type,
                    name: args.name,
                    parent: info?.parent,
                    dependencies: info?.dependencies ?? new Set(),
                    propertyDependencies: info?.propertyDependencies ?? {},
                    inputs: args.inputs,
                    outputs: answer.state,
                    custom: args.custom ?? true,
                    options: info?.options,
                });
                return { id: answer.id, state: answer.state };
            },
            call(args) {
                calls.push(args.token);
                // Lookups by name answer with the id a real provider would add.
                if (args.token === "linode:index/getDomain:getDomain") return { ...args.inputs, id: fakeId("linode:", String(args.inputs.domain)) };
                return args.inputs;
            },
        },
        options.project,
        options.stack,
        options.preview ?? false,
    );
    return {
        resources,
        calls,
        async runProgram(init) {
            const outputs = await runInPulumiStack(async () => {
                observeRegistrations(meta);
                return init();
            });
            await pulumi.runtime.disconnect();
            return (outputs ?? {}) as Record<string, unknown>;
        },
        byName(name) {
            const found = resources.find((r) => r.name === name);
            if (!found) throw new Error(`no resource named ${name}; have: ${resources.map((r) => r.name).join(", ")}`);
            return found;
        },
        ofType(type) {
            return resources.filter((r) => r.type === type);
        },
    };
}
