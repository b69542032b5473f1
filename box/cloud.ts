/**
 * The box cloud: the real program (index.ts, the stack's own config) under
 * Pulumi's mock runtime, where every resource registration is carried out
 * for real on this machine instead of answered with stand-ins:
 *
 * - linode.Instance -> a Debian 12 VM under QEMU given exactly the user-data
 *   Linode Metadata would hand it (inline, gzip, or an #include pointer that
 *   cloud-init fetches from MinIO itself); `ipv4s`/`ipAddress` are its
 *   address on the underlay, and its Linode Firewall is its nftables chain;
 * - the bucket and its scoped key -> MinIO (box/objectStore.ts);
 * - Debian's archive -> a caching apt proxy on the underlay (box/aptCache.ts)
 *   that the VMs' apt uses, so the nodes' own apt-get runs at the host's
 *   speed instead of through the emulated user-mode NIC;
 * - dynamic resources -> their serialized providers, run in a fresh process
 *   by the same host the tests use (tests/harness), created for real and
 *   deleted on teardown from the provider text kept in the box's state;
 * - random and tls -> real values, keys and certificates (box/material.ts).
 *
 * Like `pulumi up`, `up` prints progress and the stack outputs, and leaves
 * the "cloud" running; `down` deletes what `up` made, in reverse order.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { CONFIG_NAMESPACE, formatConfigErrors, parseStackConfig } from "../lib/config";
import { Registration, startMockCloud, unwrapSecrets } from "../tooling/mockCloud";
import { differingKeys, replacingInputs } from "../tooling/replacement";
import { NATS_SERVER_RELEASE } from "../lib/natsRelease";
import { natsNodeName } from "../lib/natsRollout";
import { cliStackConfigOf } from "../tooling/cliConfig";
import { redactInputs } from "../tooling/plan";
import { ProviderHost } from "../tests/harness/dynamicProviders";
import { toolPath } from "../tests/support/tools";
import { BoxAptCache } from "./aptCache";
import { BoxTls, randomOutputs } from "./material";
import { applyFirewall, attachTap, createUnderlay, FirewallSpec, removeUnderlay, UNDERLAY, vmUnderlayAddress } from "./network";
import { BoxObjectStore } from "./objectStore";
import { boxSshKey } from "./ssh";
import { BootImage, bootImageAt, macAddress, powerOff, powerOffAll, powerOn, QemuVm } from "./vm";

export const REPO_ROOT = path.resolve(__dirname, "..");
export const BOX_CACHE = process.env.MESHSTACK_BOX_CACHE ?? path.join(os.homedir(), ".cache", "meshstack", "box");
/** One box per machine: the underlay namespace and addresses are fixed. */
export const RUN_DIR = path.join(BOX_CACHE, "run");
export const STATE_FILE = path.join(RUN_DIR, "state.json");
/** The apt cache's files: kept across box runs (pool files never change), never in the repo. */
export const APT_CACHE_DIR = path.join(BOX_CACHE, "apt");
const APT_CACHE_RUN_DIR = path.join(RUN_DIR, "apt-cache");
/** The only image the box has; any other image id in the stack is refused. */
export const BOX_IMAGE_ID = "linode/debian12";

const DYNAMIC_PREFIX = "pulumi-nodejs:dynamic/";
const INSTANCE_TYPE = "linode:index/instance:Instance";
const FIREWALL_TYPE = "linode:index/firewall:Firewall";
/** What the box can replace under running VMs: instances (a new VM) and random and tls material; buckets, keys and firewalls stay as the first `up` made them. */
function replacedForReal(type: string): boolean {
    return type === INSTANCE_TYPE || type.startsWith("random:") || type.startsWith("tls:");
}
const STEP_MARK: Record<BoxStep, string> = { create: "+", same: "=", update: "~", replace: "+-", delete: "-" };

/** What one registration came to: the step, why, and the resource's id and outputs. */
interface Applied {
    step: BoxStep;
    why: string[];
    made: { id: string; state: Record<string, any>; serialized?: string };
}
const LINODE_ID_BASE = 40_000_000;
const DELETE_DEADLINE_MS = 60_000;

export interface BoxResource {
    type: string;
    name: string;
    id: string;
    /** Provider outputs, secrets unwrapped: the state file is 0600 and never leaves the cache. */
    outputs: Record<string, any>;
    /** Inputs as last applied (secrets unwrapped, no provider text): what the next `up` compares with. */
    inputs: Record<string, any>;
    /** For dynamic resources: the provider text `delete` runs, as the engine keeps it in state. */
    serializedProvider?: string;
    createdMs: number;
    durationMs: number;
}

export interface BoxVm {
    name: string;
    index: number;
    address: string;
    tap: string;
    dir: string;
    firewall?: FirewallSpec;
    /** When QEMU was started (ms since its `up` began). */
    startedMs: number;
    /** Its instance was replaced or deleted by a later `up`: powered off, kept for its disk and console. */
    retired?: boolean;
}

export interface BoxState {
    stack: string;
    startedAt: string;
    imageDir: string;
    caCertFile: string;
    sshPrivateKey: string;
    minio: { url: string; endpointHost: string };
    /** The apt proxy the VMs' apt uses (Acquire::http::Proxy), from their seed disk. */
    aptProxy?: string;
    /** The config the caller set on top of the stack file, kept for the next `up` as a stack's config is. */
    overrides: Record<string, string>;
    /** Linode ids only grow; a new instance is told apart from the one it replaces by its id. */
    lastLinodeId?: number;
    resources: BoxResource[];
    vms: BoxVm[];
    outputs?: Record<string, unknown>;
    finishedMs?: number;
}

export function readState(): BoxState | undefined {
    return fs.existsSync(STATE_FILE) ? (JSON.parse(fs.readFileSync(STATE_FILE, "utf8")) as BoxState) : undefined;
}

function writeState(state: BoxState): void {
    fs.writeFileSync(STATE_FILE, JSON.stringify(state, null, 2), { mode: 0o600 });
}

export function logsDir(stack: string): string {
    return path.join(REPO_ROOT, "out", "box", stack);
}

function shortType(type: string): string {
    const [pkg, , member] = type.split(":");
    return `${pkg.replace(/^pulumi-nodejs$/, "dynamic")}:${member ?? type}`;
}

/** Stack config as Pulumi hands it to the program: the stack file, then the box's and the caller's overrides. */
export function boxConfig(stack: string, overrides: Record<string, string>): { values: Record<string, string>; secretKeys: string[]; project: string } {
    const stackFile = path.join(REPO_ROOT, `Pulumi.${stack}.yaml`);
    if (!fs.existsSync(stackFile)) throw new Error(`no stack file ${path.relative(REPO_ROOT, stackFile)}; create it or pass --stack NAME`);
    const project = (YAML.parse(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8")) as { name: string }).name;
    const cli = cliStackConfigOf(REPO_ROOT, stack);
    if (!cli.ok) throw new Error(`${path.basename(stackFile)}: the Pulumi CLI would refuse it: ${cli.errors.join("; ")}`);
    const raw = cli.raw;
    const values = { ...raw.values };
    for (const [key, value] of Object.entries(overrides)) values[key.includes(":") ? key : `${CONFIG_NAMESPACE}:${key}`] = value;
    const parsed = parseStackConfig({ values, secretKeys: raw.secretKeys });
    if (!parsed.ok) throw new Error(`${path.basename(stackFile)} with the box's overrides: ${formatConfigErrors(parsed.errors)}`);
    const problems = [
        parsed.value.objectStore.kind !== "linode" ? `meshstack:objectStoreKind is ${parsed.value.objectStore.kind}; the box stands in for Linode Object Storage only (kind linode)` : "",
        parsed.value.wgCache.image !== BOX_IMAGE_ID ? `meshstack:wgCacheImage is ${parsed.value.wgCache.image}; the box has ${BOX_IMAGE_ID} only` : "",
        parsed.value.nats.image !== BOX_IMAGE_ID ? `meshstack:natsImage is ${parsed.value.nats.image}; the box has ${BOX_IMAGE_ID} only` : "",
        ...Object.entries(parsed.value.nats.nodeImages).filter(([, image]) => image !== BOX_IMAGE_ID)
            .map(([index, image]) => `meshstack:natsNodeImages gives ${natsNodeName(Number(index))} ${image}; the box has ${BOX_IMAGE_ID} only`),
        parsed.value.nats.dnsDomain ? "meshstack:natsDnsDomain is set; the box has no Linode DNS (unset it for the box)" : "",
    ].filter(Boolean);
    if (problems.length) throw new Error(`the box cannot run stack ${stack}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    return { values, secretKeys: [...raw.secretKeys], project };
}

export interface UpOptions {
    stack: string;
    /** Config values on top of the stack file (`key=value`, key with or without `meshstack:`). */
    overrides: Record<string, string>;
    imageDir: string;
    log: (line: string) => void;
}

export interface UpdateOptions {
    /** Config values on top of those the box was brought up with, as `pulumi config set` before the next `up`. */
    overrides: Record<string, string>;
    /** Logical names replaced whatever their inputs say, as `pulumi up --replace` does. */
    replace: string[];
    log: (line: string) => void;
}

/** What an `up` did to each resource the program declares (and to those it no longer does). */
export type BoxStep = "create" | "same" | "update" | "replace" | "delete";

/** The box's own CA: MinIO's certificate comes from it, and the VMs get it from their seed disk. */
function makeBoxCa(tls: BoxTls, dir: string): { caCertFile: string; issue: (ip: string) => { certPem: string; keyPem: string } } {
    fs.mkdirSync(dir, { recursive: true });
    const caKey = tls.outputs("tls:index/privateKey:PrivateKey", { algorithm: "ECDSA", ecdsaCurve: "P256" });
    const ca = tls.outputs("tls:index/selfSignedCert:SelfSignedCert", {
        privateKeyPem: caKey.privateKeyPem, subject: { commonName: "meshstack box CA", organization: "meshstack box" },
        isCaCertificate: true, validityPeriodHours: 48, allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
    });
    const caCertFile = path.join(dir, "box-ca.crt");
    fs.writeFileSync(caCertFile, String(ca.certPem));
    const issue = (ip: string) => {
        const key = tls.outputs("tls:index/privateKey:PrivateKey", { algorithm: "ECDSA", ecdsaCurve: "P256" });
        const csr = tls.outputs("tls:index/certRequest:CertRequest", { privateKeyPem: key.privateKeyPem, subject: { commonName: ip, organization: "meshstack box" }, ipAddresses: [ip] });
        const cert = tls.outputs("tls:index/locallySignedCert:LocallySignedCert", {
            certRequestPem: csr.certRequestPem, caCertPem: ca.certPem, caPrivateKeyPem: caKey.privateKeyPem,
            validityPeriodHours: 48, allowedUses: ["digital_signature", "server_auth"],
        });
        return { certPem: String(cert.certPem), keyPem: String(key.privateKeyPem) };
    };
    return { caCertFile, issue };
}

/**
 * NoCloud network-config: the user-mode NIC (default route and DNS: the
 * internet a Linode has), the underlay NIC with the "public" address. apt
 * goes over the underlay to the box's apt cache, not the user-mode NIC.
 */
function networkConfig(index: number, address: string): string {
    return YAML.stringify({
        version: 1,
        config: [
            { type: "physical", name: "ens3", mac_address: macAddress(index, 0), subnets: [{ type: "dhcp" }] },
            { type: "physical", name: "ens4", mac_address: macAddress(index, 1), subnets: [{ type: "static", address: `${address}/${UNDERLAY.prefixLength}` }] },
        ],
    });
}

/** The config the box sets for every run of a stack: its mirror, its operator (this host) and its slower boots. */
function boxMachineConfig(storeUrl: string, sshPublicKey: string): Record<string, string> {
    // The nodes download nats-server from the box's mirror and check its own checksum.
    const tarball = natsServerTarball();
    return {
        natsServerDownloadUrl: `${storeUrl}/mirror/nats-server/{version}/nats-server-{version}-linux-{arch}.tar.gz`,
        natsServerSha256Amd64: fs.readFileSync(`${tarball}.sha256`, "utf8").split(/\s+/)[0],
        // The box's operator is this host: break-glass SSH with the box's key, from the host's underlay address.
        sshAuthorizedKeys: JSON.stringify([sshPublicKey]),
        breakGlassSshCidrs: JSON.stringify([`${UNDERLAY.hostAddress}/32`]),
        // Emulated VMs on a shared host boot several times slower than a Linode; the deploy's wait is what grows.
        wgPubkeyPollTimeoutSeconds: "1500",
    };
}

function natsServerTarball(): string {
    const v = NATS_SERVER_RELEASE.version;
    const tarball = path.join(path.dirname(path.dirname(toolPath("nats-server"))), "mirror", "nats-server", v, `nats-server-${v}-linux-amd64.tar.gz`);
    if (!fs.existsSync(`${tarball}.sha256`)) throw new Error(`${tarball} is missing; run scripts/setup.sh`);
    return tarball;
}

function withoutProvider(values: Record<string, any>): Record<string, any> {
    const { __provider: _provider, ...rest } = values;
    return rest;
}

/**
 * One `up` of the program against the box: the first (nothing exists) or a
 * later one against the box's state, deciding per resource as the engine
 * does. What it makes, it records in the state file at once, so `down`
 * removes it even after a crash.
 */
class BoxDeployment {
    private readonly t0 = Date.now();
    readonly steps = new Map<string, BoxStep>();
    private readonly firewalls = new Map<string, FirewallSpec>();
    /** Resources the program replaced with create-before-delete: deleted once the program is done, as the engine does. */
    private readonly superseded: BoxResource[] = [];
    private readonly tls = new BoxTls();
    private readonly image: BootImage;
    private readonly store: BoxObjectStore;

    constructor(readonly state: BoxState, private readonly out: (line: string) => void) {
        this.image = bootImageAt(state.imageDir);
        this.store = new BoxObjectStore(path.join(RUN_DIR, "minio"), UNDERLAY.hostAddress, state.caCertFile);
        for (const r of state.resources.filter((r) => r.type === FIREWALL_TYPE)) this.firewalls.set(r.id, firewallSpecOf(r.outputs));
    }

    log(line: string): void {
        this.out(`[${((Date.now() - this.t0) / 1000).toFixed(1).padStart(6)}s] ${line}`);
    }

    private save(): void {
        writeState(this.state);
    }

    /** Linode never reuses an id: a replaced instance's successor is told apart by it (the poll runs again for a new id). */
    private nextLinodeId(): string {
        this.state.lastLinodeId = (this.state.lastLinodeId ?? LINODE_ID_BASE) + 1;
        return String(this.state.lastLinodeId);
    }

    private async createInstance(name: string, inputs: Record<string, any>, id: string): Promise<Record<string, unknown>> {
        if (inputs.image !== BOX_IMAGE_ID) throw new Error(`${name}: image ${inputs.image}; the box has ${BOX_IMAGE_ID} only`);
        const userData = Buffer.from(String(inputs.metadatas?.[0]?.userData ?? ""), "base64");
        // Every VM the box ever booted keeps its index: a replacement gets a new address, tap and disk, as a new Linode does.
        const index = this.state.vms.length;
        const address = vmUnderlayAddress(index);
        const firstOfName = !this.state.vms.some((vm) => vm.name === name);
        const vm: BoxVm = {
            name, index, address, tap: `mbxt${index}`, dir: path.join(RUN_DIR, "vms", firstOfName ? name : `${name}-${index}`),
            firewall: inputs.firewallId !== undefined ? this.firewalls.get(String(inputs.firewallId)) : undefined, startedMs: Date.now() - this.t0,
        };
        if (inputs.firewallId !== undefined && !vm.firewall) throw new Error(`${name}: firewall ${inputs.firewallId} was not created by this box`);
        const qemu = new QemuVm({
            name, dir: vm.dir, image: this.image,
            nics: [{ kind: "user", mac: macAddress(index, 0), pciSlot: 3 }, { kind: "tap", mac: macAddress(index, 1), ifname: vm.tap, pciSlot: 4 }],
            seed: {
                metaData: YAML.stringify({ "instance-id": id, "local-hostname": inputs.label, "public-keys": inputs.authorizedKeys ?? [] }),
                userData,
                networkConfig: networkConfig(index, address),
                extra: { "box-ca.crt": fs.readFileSync(this.state.caCertFile), ...(this.state.aptProxy ? { "apt-proxy": `${this.state.aptProxy}\n` } : {}) },
            },
        });
        qemu.prepare();
        qemu.start();
        attachTap(vm.tap);
        applyFirewall(`${name}-${index}`, vm.tap, vm.firewall);
        this.state.vms.push(vm);
        this.save();
        const delivered = userData[0] === 0x1f && userData[1] === 0x8b ? "gzip" : userData.toString("utf8").startsWith("#include") ? "#include pointer" : "inline";
        this.log(`  ${name}: VM ${vm.tap} at ${address} booting (${userData.length} bytes of user-data, ${delivered}; console ${path.relative(REPO_ROOT, qemu.consoleLog) || qemu.consoleLog})`);
        // Linode reports an instance running at power-on, before it has booted.
        return { ipv4s: [address], ipAddress: address, status: "running" };
    }

    /** Powers a replaced or deleted instance's VM off and keeps its disk and console for the post-mortem. */
    private async retireInstance(resource: BoxResource): Promise<void> {
        const vm = this.state.vms.find((v) => !v.retired && v.name === resource.name && v.address === resource.outputs.ipAddress);
        if (!vm) return;
        await powerOff(vm.dir);
        vm.retired = true;
        this.save();
        this.log(`  ${resource.name}: VM ${vm.tap} at ${vm.address} powered off (retired)`);
    }

    /** Runs one provider operation in a fresh host for the serialized provider, relaying its progress lines. */
    private async withProvider<T>(name: string, serialized: string, operation: (host: ProviderHost) => Promise<T>): Promise<T> {
        const host = await ProviderHost.start(serialized, { NODE_EXTRA_CA_CERTS: this.state.caCertFile });
        let shown = 0;
        const relay = () => {
            while (shown < host.logs.length) this.log(`  ${name} | ${host.logs[shown++]}`);
        };
        const timer = setInterval(relay, 500);
        try {
            return await operation(host);
        } finally {
            clearInterval(timer);
            relay();
            await host.close();
        }
    }

    private async create(type: string, name: string, inputs: Record<string, any>): Promise<{ id: string; state: Record<string, any>; serialized?: string }> {
        switch (type) {
            case "linode:index/objectStorageBucket:ObjectStorageBucket": {
                const rule = inputs.lifecycleRules?.[0];
                this.store.createBucket(inputs.label, rule ? { prefix: rule.prefix, expiryDays: rule.expiration?.days } : undefined);
                return { id: `${inputs.region}:${inputs.label}`, state: { ...inputs, endpoint: this.store.endpointHost, hostname: `${this.store.endpointHost}/${inputs.label}` } };
            }
            case "linode:index/objectStorageKey:ObjectStorageKey": {
                const key = this.store.createScopedKey(inputs.label, inputs.bucketAccesses ?? []);
                return { id: this.nextLinodeId(), state: { ...inputs, ...key, limited: true } };
            }
            case FIREWALL_TYPE: {
                const id = this.nextLinodeId();
                this.firewalls.set(id, firewallSpecOf(inputs));
                return { id, state: { ...inputs, status: "enabled" } };
            }
            case INSTANCE_TYPE: {
                const id = this.nextLinodeId();
                return { id, state: { ...inputs, ...(await this.createInstance(name, inputs, id)) } };
            }
            default:
                if (type.startsWith("random:")) return { id: `${name}-id`, state: { ...inputs, ...randomOutputs(type, inputs) } };
                if (type.startsWith("tls:")) return { id: `${name}-id`, state: { ...inputs, ...this.tls.outputs(type, inputs) } };
                if (type.startsWith(DYNAMIC_PREFIX)) {
                    const serialized = String(inputs.__provider);
                    const { id, outs } = await this.withProvider(name, serialized, (host) => host.checkAndCreate(withoutProvider(inputs)));
                    return { id, state: { ...outs, __provider: serialized }, serialized };
                }
                throw new Error(`the box has no stand-in for ${type} (${name})`);
        }
    }

    /** Deletes a resource the program no longer has (or has replaced): dynamic ones by the provider kept in state. */
    private async remove(resource: BoxResource): Promise<void> {
        if (resource.type === INSTANCE_TYPE) await this.retireInstance(resource);
        else if (resource.serializedProvider) {
            const failed = await deleteDynamic(resource, this.state.caCertFile);
            if (failed) throw new Error(`${resource.name}: delete failed (${failed})`);
        }
        this.log(`- ${shortType(resource.type)} ${resource.name} deleted`);
    }

    private record(resource: BoxResource): void {
        this.state.resources = [...this.state.resources.filter((r) => r.name !== resource.name), resource];
        this.save();
    }

    /** What the engine does with one registration: create it, or compare it with state and leave, update or replace it. */
    private async apply(registration: Registration, forced: boolean): Promise<{ id: string; state: Record<string, unknown> }> {
        const { type, name } = registration;
        const inputs = unwrapSecrets(registration.inputs) as Record<string, any>;
        const old = this.state.resources.find((r) => r.name === name);
        const started = Date.now();
        if (!old) this.log(`+ ${shortType(type)} ${name} creating`);
        const { step, why, made } = old
            ? type.startsWith(DYNAMIC_PREFIX) ? await this.applyDynamic(old, inputs, forced) : await this.applyOther(old, inputs, forced, registration.options?.deleteBeforeReplace === true)
            : { step: "create" as const, why: [], made: await this.create(type, name, inputs) };
        this.steps.set(name, step);
        if (step !== "same") {
            const durationMs = Date.now() - started;
            this.record({ type, name, id: made.id, inputs: withoutProvider(inputs), outputs: made.state, serializedProvider: made.serialized, createdMs: started - this.t0, durationMs });
            this.log(`${STEP_MARK[step]} ${shortType(type)} ${name} ${step}d${why.length ? ` (${why.join(", ")})` : ""} in ${(durationMs / 1000).toFixed(1)}s`);
        }
        return { id: made.id, state: made.state };
    }

    /** check(), diff(), then update() or create() in one host of the provider the program now has, as the engine does. */
    private async applyDynamic(old: BoxResource, inputs: Record<string, any>, forced: boolean): Promise<Applied> {
        const serialized = String(inputs.__provider);
        return this.withProvider(old.name, serialized, async (host) => {
            const checked = await host.checkedInputs(old.inputs, withoutProvider(inputs));
            const olds = withoutProvider(old.outputs);
            const diff = await host.diff(old.id, olds, checked);
            const why = [...(forced ? ["(replaced on request)"] : []), ...(diff.diffs ?? [])];
            if (forced || (diff.replaces ?? []).length) {
                await this.supersede(old, diff.deleteBeforeReplace === true);
                const { id, outs } = await host.create(checked);
                return { step: "replace", why, made: { id, state: { ...outs, __provider: serialized }, serialized } };
            }
            if (!diff.changes) return { step: "same", why, made: { id: old.id, state: old.outputs } };
            const { outs } = await host.update(old.id, olds, checked);
            return { step: "update", why, made: { id: old.id, state: { ...outs, __provider: serialized }, serialized } };
        });
    }

    /** The engine's rule for other providers (tooling/replacement.ts): the inputs that differ, and whether any forces a new resource. */
    private async applyOther(old: BoxResource, inputs: Record<string, any>, forced: boolean, deleteBeforeReplace: boolean): Promise<Applied> {
        const differing = differingKeys(old.inputs, inputs);
        const why = [...(forced ? ["(replaced on request)"] : []), ...differing];
        if (!forced && differing.length === 0) return { step: "same", why, made: { id: old.id, state: old.outputs } };
        const replace = forced || differing.some(replacingInputs(old.type));
        if (!replace || !replacedForReal(old.type)) {
            throw new Error(`${old.name}: the box cannot ${replace ? "replace" : "update"} a ${shortType(old.type)} under running VMs (${why.join(", ")}); bring the box down and up again`);
        }
        await this.supersede(old, deleteBeforeReplace);
        return { step: "replace", why, made: await this.create(old.type, old.name, inputs) };
    }

    /** A replaced resource goes before its replacement is made (deleteBeforeReplace), else once the program is done. */
    private async supersede(old: BoxResource, deleteBeforeReplace: boolean): Promise<void> {
        if (deleteBeforeReplace) await this.remove(old);
        else this.superseded.push(old);
    }

    /** Runs index.ts under the mock runtime, every registration carried out by `apply`. Resolves with the stack outputs. */
    async run(config: { values: Record<string, string>; secretKeys: string[]; project: string }, forced: Set<string>): Promise<Record<string, unknown>> {
        let failure: Error | undefined;
        const cloud = await startMockCloud({
            project: config.project,
            stack: this.state.stack,
            config: config.values,
            secretKeys: config.secretKeys,
            preview: false,
            answer: async (registration, faked) => {
                if (!registration.custom) return faked;
                try {
                    return await this.apply(registration, forced.has(registration.name));
                } catch (err) {
                    failure ??= new Error(`${shortType(registration.type)} ${registration.name}: ${(err as Error).message}`);
                    this.log(`! ${shortType(registration.type)} ${registration.name} failed: ${(err as Error).message}`);
                    throw err;
                }
            },
        });
        const outputs = await cloud.runProgram(() => ({ ...require(path.join(REPO_ROOT, "index.ts")) }));
        if (failure) throw failure;
        // What the program no longer declares, and what it replaced, goes last and newest first, as the engine deletes.
        const gone = this.state.resources.filter((r) => !this.steps.has(r.name));
        for (const resource of [...gone.reverse(), ...this.superseded.reverse()]) {
            if (gone.includes(resource)) this.steps.set(resource.name, "delete");
            await this.remove(resource);
        }
        this.state.resources = this.state.resources.filter((r) => !gone.includes(r));
        this.state.outputs = unwrapSecrets(outputs);
        this.state.finishedMs = Date.now() - this.t0;
        this.save();
        const out = logsDir(this.state.stack);
        fs.mkdirSync(out, { recursive: true });
        fs.writeFileSync(path.join(out, "outputs.json"), JSON.stringify(redactInputs(outputs), null, 2) + "\n");
        return outputs;
    }
}

/** The host (host:port) of the Debian mirror the image's sources.list names, as build.sh recorded it; undefined when it is not plain http (apt's http proxy does not carry https). */
export function imageArchiveHost(imageDir: string): string | undefined {
    const file = path.join(imageDir, "mirror");
    if (!fs.existsSync(file)) throw new Error(`box image ${imageDir} does not say its Debian mirror; rebuild it with box/image/build.sh`);
    const mirror = new URL(fs.readFileSync(file, "utf8").trim());
    return mirror.protocol === "http:" ? mirror.host : undefined;
}

function firewallSpecOf(values: Record<string, any>): FirewallSpec {
    return { inboundPolicy: values.inboundPolicy, inbounds: values.inbounds, outboundPolicy: values.outboundPolicy, outbounds: values.outbounds };
}

/** The first `up`: underlay, MinIO and its mirror, then every resource the program declares. Resolves with the state; on failure the caller tears down. */
export async function up(options: UpOptions): Promise<BoxState> {
    fs.mkdirSync(RUN_DIR, { recursive: true, mode: 0o700 });
    bootImageAt(options.imageDir);
    const ca = makeBoxCa(new BoxTls(), path.join(RUN_DIR, "ca"));
    const sshKey = boxSshKey(BOX_CACHE);
    const store = new BoxObjectStore(path.join(RUN_DIR, "minio"), UNDERLAY.hostAddress, ca.caCertFile);
    const state: BoxState = {
        stack: options.stack, startedAt: new Date().toISOString(), imageDir: options.imageDir, caCertFile: ca.caCertFile,
        sshPrivateKey: sshKey.privateKey, minio: { url: store.url, endpointHost: store.endpointHost }, overrides: { ...options.overrides }, resources: [], vms: [],
    };
    const deployment = new BoxDeployment(state, options.log);
    createUnderlay();
    deployment.log(`underlay ${UNDERLAY.prefix}.0/${UNDERLAY.prefixLength} up (namespace ${UNDERLAY.namespace}, host ${UNDERLAY.hostAddress})`);
    fs.mkdirSync(path.join(RUN_DIR, "minio"), { recursive: true });
    await store.start(ca.issue);
    deployment.log(`MinIO at ${store.url}`);
    const archive = imageArchiveHost(options.imageDir);
    if (archive) {
        const aptCache = new BoxAptCache(APT_CACHE_RUN_DIR, UNDERLAY.hostAddress, APT_CACHE_DIR, [archive]);
        await aptCache.start();
        state.aptProxy = aptCache.proxyUrl;
        deployment.log(`apt cache for http://${archive} at ${aptCache.proxyUrl} (files in ${APT_CACHE_DIR})`);
    } else deployment.log("the image's Debian mirror is not plain http: the VMs' apt goes to it directly, over the user-mode NIC");
    const tarball = natsServerTarball();
    store.publishToMirror(`nats-server/${NATS_SERVER_RELEASE.version}/${path.basename(tarball)}`, tarball);
    const config = boxConfig(options.stack, { ...boxMachineConfig(store.url, sshKey.publicKey), ...options.overrides });
    writeState(state);
    await deployment.run(config, new Set());
    return state;
}

/**
 * A later `pulumi up` against the running box: the stack's config with the
 * caller's changes, each resource left, updated in its own provider, or
 * replaced (a new VM; the old one powered off), and what the program no
 * longer declares deleted. Buckets, keys and firewalls cannot change under
 * running VMs here: a change to one fails the update, which leaves the box as
 * it is (changes already carried out included), for its logs. Resolves with
 * what happened to each resource.
 */
export async function update(options: UpdateOptions): Promise<{ state: BoxState; steps: Map<string, BoxStep> }> {
    const state = readState();
    if (!state?.outputs) throw new Error("no box is up (or its first up did not finish); npm run box brings one up");
    for (const name of options.replace) {
        if (!state.resources.some((r) => r.name === name)) throw new Error(`--replace ${name}: no such resource in the box; it has ${state.resources.map((r) => r.name).join(", ")}`);
    }
    state.overrides = { ...state.overrides, ...options.overrides };
    const deployment = new BoxDeployment(state, options.log);
    // New VMs of this update fetch their packages through it: started again if it has gone since the first up.
    const archive = imageArchiveHost(state.imageDir);
    if (state.aptProxy && archive && (await new BoxAptCache(APT_CACHE_RUN_DIR, UNDERLAY.hostAddress, APT_CACHE_DIR, [archive]).ensureRunning())) {
        deployment.log(`apt cache at ${state.aptProxy} started again`);
    }
    const config = boxConfig(state.stack, { ...boxMachineConfig(state.minio.url, boxSshKey(BOX_CACHE).publicKey), ...state.overrides });
    await deployment.run(config, new Set(options.replace));
    return { state, steps: deployment.steps };
}

/**
 * Deletes one dynamic resource by the provider text kept in state, as the
 * engine does; a delete that waits on a VM already gone is cut short.
 * Resolves with why it failed, or undefined.
 */
async function deleteDynamic(resource: BoxResource, caCertFile: string): Promise<string | undefined> {
    let host: ProviderHost;
    try {
        host = await ProviderHost.start(resource.serializedProvider!, { NODE_EXTRA_CA_CERTS: caCertFile });
    } catch (err) {
        return `its provider did not start: ${(err as Error).message}`;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
        const deadline = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${DELETE_DEADLINE_MS / 1000}s`)), DELETE_DEADLINE_MS);
        });
        await Promise.race([host.delete(resource.id, withoutProvider(resource.outputs)), deadline]);
        return undefined;
    } catch (err) {
        return (err as Error).message;
    } finally {
        clearTimeout(timer);
        await host.kill("SIGKILL");
        await host.close();
    }
}

/** Pulls a box VM's plug (chaos). */
export async function powerOffVm(vm: BoxVm): Promise<void> {
    await powerOff(vm.dir);
}

/** Boots a powered-off box VM again on its own disk, behind the same tap name and firewall chain. */
export function powerOnVm(vm: BoxVm): void {
    powerOn(vm.dir);
    attachTap(vm.tap);
}

/** Deletes everything a box run made, newest first; works on a crashed run's leftovers too. */
export async function down(log: (line: string) => void): Promise<void> {
    const state = readState();
    if (state) {
        for (const resource of [...state.resources].reverse()) {
            if (!resource.serializedProvider) continue;
            const failed = await deleteDynamic(resource, state.caCertFile);
            log(`- ${shortType(resource.type)} ${resource.name}${failed ? `: delete failed (${failed}); removed with the box anyway` : " deleted"}`);
        }
        const consoles = path.join(logsDir(state.stack), "console");
        fs.mkdirSync(consoles, { recursive: true });
        for (const vm of state.vms) {
            const file = path.join(vm.dir, "console.log");
            if (fs.existsSync(file)) fs.copyFileSync(file, path.join(consoles, `${vm.retired ? `${vm.name}-${vm.index}-retired` : vm.name}.log`));
        }
        // Its hits and misses say how much of the VMs' apt work came from the cache.
        const aptLog = BoxAptCache.logFile(APT_CACHE_RUN_DIR);
        if (fs.existsSync(aptLog)) fs.copyFileSync(aptLog, path.join(logsDir(state.stack), "apt-cache.log"));
    }
    const stopped = await powerOffAll(path.join(RUN_DIR, "vms"));
    if (stopped.length) log(`- VMs powered off: ${stopped.join(", ")}`);
    if (BoxObjectStore.stop(path.join(RUN_DIR, "minio"))) log("- MinIO stopped");
    if (BoxAptCache.stop(APT_CACHE_RUN_DIR)) log(`- apt cache stopped (its files stay in ${APT_CACHE_DIR})`);
    removeUnderlay();
    fs.rmSync(RUN_DIR, { recursive: true, force: true });
    log("- box removed (underlay, VMs, MinIO, apt cache process, state)");
}
