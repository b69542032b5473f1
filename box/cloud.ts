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
import * as pulumi from "@pulumi/pulumi";
import * as YAML from "yaml";
import { CONFIG_NAMESPACE, formatConfigErrors, parseStackConfig } from "../lib/config";
import { unwrapSecrets } from "../tooling/mockCloud";
import { NATS_SERVER_RELEASE } from "../lib/natsRelease";
import { cliStackConfigOf } from "../tooling/cliConfig";
import { redactInputs } from "../tooling/plan";
import { ProviderHost } from "../tests/harness/dynamicProviders";
import { toolPath } from "../tests/support/tools";
import { BoxTls, randomOutputs } from "./material";
import { applyFirewall, attachTap, createUnderlay, FirewallSpec, removeUnderlay, UNDERLAY, vmUnderlayAddress } from "./network";
import { BoxObjectStore } from "./objectStore";
import { boxSshKey } from "./ssh";
import { bootImageAt, macAddress, powerOff, powerOffAll, powerOn, QemuVm } from "./vm";

export const REPO_ROOT = path.resolve(__dirname, "..");
export const BOX_CACHE = process.env.MESHSTACK_BOX_CACHE ?? path.join(os.homedir(), ".cache", "meshstack", "box");
/** One box per machine: the underlay namespace and addresses are fixed. */
export const RUN_DIR = path.join(BOX_CACHE, "run");
export const STATE_FILE = path.join(RUN_DIR, "state.json");
/** The only image the box has; any other image id in the stack is refused. */
export const BOX_IMAGE_ID = "linode/debian12";

const DYNAMIC_PREFIX = "pulumi-nodejs:dynamic/";
const ROOT_STACK_TYPE = "pulumi:pulumi:Stack";
const LINODE_ID_BASE = 40_000_000;
const DELETE_DEADLINE_MS = 60_000;
// The runtime exports this from its stack module but not from its index.
const { runInPulumiStack } = require("@pulumi/pulumi/runtime/stack") as { runInPulumiStack: (init: () => Promise<unknown>) => Promise<unknown> };

export interface BoxResource {
    type: string;
    name: string;
    id: string;
    /** Provider outputs, secrets unwrapped: the state file is 0600 and never leaves the cache. */
    outputs: Record<string, any>;
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
    /** When QEMU was started (ms since the run began). */
    startedMs: number;
}

export interface BoxState {
    stack: string;
    startedAt: string;
    imageDir: string;
    caCertFile: string;
    sshPrivateKey: string;
    minio: { url: string; endpointHost: string };
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

/** NoCloud network-config: the user-mode NIC for the host and the archive, the underlay NIC with the "public" address. */
function networkConfig(index: number, address: string): string {
    return YAML.stringify({
        version: 1,
        config: [
            { type: "physical", name: "ens3", mac_address: macAddress(index, 0), subnets: [{ type: "dhcp" }] },
            { type: "physical", name: "ens4", mac_address: macAddress(index, 1), subnets: [{ type: "static", address: `${address}/${UNDERLAY.prefixLength}` }] },
        ],
    });
}

/** Runs the program and carries out each registration. Resolves with the stack outputs; on failure the caller tears down. */
export async function up(options: UpOptions): Promise<BoxState> {
    const t0 = Date.now();
    const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s`;
    const log = (line: string) => options.log(`[${elapsed()}] ${line}`);
    fs.mkdirSync(RUN_DIR, { recursive: true, mode: 0o700 });
    const image = bootImageAt(options.imageDir);
    const tls = new BoxTls();
    const ca = makeBoxCa(tls, path.join(RUN_DIR, "ca"));
    const sshKey = boxSshKey(BOX_CACHE);

    createUnderlay();
    log(`underlay ${UNDERLAY.prefix}.0/${UNDERLAY.prefixLength} up (namespace ${UNDERLAY.namespace}, host ${UNDERLAY.hostAddress})`);
    const store = new BoxObjectStore(path.join(RUN_DIR, "minio"), UNDERLAY.hostAddress, ca.caCertFile);
    fs.mkdirSync(path.join(RUN_DIR, "minio"), { recursive: true });
    await store.start(ca.issue);
    log(`MinIO at ${store.url}`);

    // The nodes download nats-server from the box's mirror and check its own checksum.
    const v = NATS_SERVER_RELEASE.version;
    const tarballDir = path.join(path.dirname(path.dirname(toolPath("nats-server"))), "mirror", "nats-server", v);
    const tarball = path.join(tarballDir, `nats-server-${v}-linux-amd64.tar.gz`);
    if (!fs.existsSync(`${tarball}.sha256`)) throw new Error(`${tarball} is missing; run scripts/setup.sh`);
    store.publishToMirror(`nats-server/${v}/${path.basename(tarball)}`, tarball);
    const mirrorConfig = {
        natsServerDownloadUrl: `${store.url}/mirror/nats-server/{version}/nats-server-{version}-linux-{arch}.tar.gz`,
        natsServerSha256Amd64: fs.readFileSync(`${tarball}.sha256`, "utf8").split(/\s+/)[0],
        // The box's operator is this host: break-glass SSH with the box's key, from the host's underlay address.
        sshAuthorizedKeys: JSON.stringify([sshKey.publicKey]),
        breakGlassSshCidrs: JSON.stringify([`${UNDERLAY.hostAddress}/32`]),
        // Emulated VMs on a shared host boot several times slower than a Linode; the deploy's wait is what grows.
        wgPubkeyPollTimeoutSeconds: "1500",
    };
    const config = boxConfig(options.stack, { ...mirrorConfig, ...options.overrides });

    const state: BoxState = {
        stack: options.stack, startedAt: new Date(t0).toISOString(), imageDir: options.imageDir, caCertFile: ca.caCertFile,
        sshPrivateKey: sshKey.privateKey, minio: { url: store.url, endpointHost: store.endpointHost }, resources: [], vms: [],
    };
    writeState(state);
    const firewalls = new Map<string, FirewallSpec>();
    let linodeIds = 0;
    let vmCount = 0;

    const createInstance = async (name: string, inputs: Record<string, any>, id: string): Promise<Record<string, unknown>> => {
        if (inputs.image !== BOX_IMAGE_ID) throw new Error(`${name}: image ${inputs.image}; the box has ${BOX_IMAGE_ID} only`);
        const userData = Buffer.from(String(inputs.metadatas?.[0]?.userData ?? ""), "base64");
        const index = vmCount++;
        const address = vmUnderlayAddress(index);
        const vm: BoxVm = {
            name, index, address, tap: `mbxt${index}`, dir: path.join(RUN_DIR, "vms", name),
            firewall: inputs.firewallId !== undefined ? firewalls.get(String(inputs.firewallId)) : undefined, startedMs: Date.now() - t0,
        };
        if (inputs.firewallId !== undefined && !vm.firewall) throw new Error(`${name}: firewall ${inputs.firewallId} was not created by this box run`);
        const qemu = new QemuVm({
            name, dir: vm.dir, image,
            nics: [{ kind: "user", mac: macAddress(index, 0), pciSlot: 3 }, { kind: "tap", mac: macAddress(index, 1), ifname: vm.tap, pciSlot: 4 }],
            seed: {
                metaData: YAML.stringify({ "instance-id": id, "local-hostname": inputs.label, "public-keys": inputs.authorizedKeys ?? [] }),
                userData,
                networkConfig: networkConfig(index, address),
                extra: { "box-ca.crt": fs.readFileSync(ca.caCertFile) },
            },
        });
        qemu.prepare();
        qemu.start();
        attachTap(vm.tap);
        applyFirewall(name, vm.tap, vm.firewall);
        state.vms.push(vm);
        writeState(state);
        const delivered = userData[0] === 0x1f && userData[1] === 0x8b ? "gzip" : userData.toString("utf8").startsWith("#include") ? "#include pointer" : "inline";
        log(`  ${name}: VM ${vm.tap} at ${address} booting (${userData.length} bytes of user-data, ${delivered}; console ${path.relative(REPO_ROOT, qemu.consoleLog) || qemu.consoleLog})`);
        // Linode reports an instance running at power-on, before it has booted.
        return { ipv4s: [address], ipAddress: address, status: "running" };
    };

    const runDynamic = async (name: string, inputs: Record<string, any>): Promise<{ id: string; outs: Record<string, any>; serialized: string }> => {
        const { __provider: serialized, ...rest } = inputs;
        const host = await ProviderHost.start(String(serialized), { NODE_EXTRA_CA_CERTS: ca.caCertFile });
        let shown = 0;
        const relay = setInterval(() => {
            while (shown < host.logs.length) log(`  ${name} | ${host.logs[shown++]}`);
        }, 500);
        try {
            const { id, outs } = await host.checkAndCreate(rest);
            return { id, outs: { ...outs, __provider: serialized }, serialized: String(serialized) };
        } finally {
            clearInterval(relay);
            while (shown < host.logs.length) log(`  ${name} | ${host.logs[shown++]}`);
            await host.close();
        }
    };

    const create = async (type: string, name: string, inputs: Record<string, any>): Promise<{ id: string; state: Record<string, unknown>; serialized?: string }> => {
        const linodeId = () => String(LINODE_ID_BASE + ++linodeIds);
        switch (type) {
            case "linode:index/objectStorageBucket:ObjectStorageBucket": {
                const rule = inputs.lifecycleRules?.[0];
                store.createBucket(inputs.label, rule ? { prefix: rule.prefix, expiryDays: rule.expiration?.days } : undefined);
                return { id: `${inputs.region}:${inputs.label}`, state: { ...inputs, endpoint: store.endpointHost, hostname: `${store.endpointHost}/${inputs.label}` } };
            }
            case "linode:index/objectStorageKey:ObjectStorageKey": {
                const key = store.createScopedKey(inputs.label, inputs.bucketAccesses ?? []);
                return { id: linodeId(), state: { ...inputs, ...key, limited: true } };
            }
            case "linode:index/firewall:Firewall": {
                const id = linodeId();
                firewalls.set(id, { inboundPolicy: inputs.inboundPolicy, inbounds: inputs.inbounds, outboundPolicy: inputs.outboundPolicy, outbounds: inputs.outbounds });
                return { id, state: { ...inputs, status: "enabled" } };
            }
            case "linode:index/instance:Instance": {
                const id = linodeId();
                return { id, state: { ...inputs, ...(await createInstance(name, inputs, id)) } };
            }
            default:
                if (type.startsWith("random:")) return { id: `${name}-id`, state: { ...inputs, ...randomOutputs(type, inputs) } };
                if (type.startsWith("tls:")) return { id: `${name}-id`, state: { ...inputs, ...tls.outputs(type, inputs) } };
                if (type.startsWith(DYNAMIC_PREFIX)) {
                    const { id, outs, serialized } = await runDynamic(name, inputs);
                    return { id, state: outs, serialized };
                }
                throw new Error(`the box has no stand-in for ${type} (${name})`);
        }
    };

    let failure: Error | undefined;
    pulumi.runtime.setAllConfig(config.values, config.secretKeys);
    await pulumi.runtime.setMocks(
        {
            async newResource(args) {
                if (args.type === ROOT_STACK_TYPE || args.custom === false) return { id: `${args.name}-id`, state: args.inputs };
                const started = Date.now();
                const inputs = unwrapSecrets(args.inputs) as Record<string, any>;
                log(`+ ${shortType(args.type)} ${args.name} creating`);
                try {
                    const made = await create(args.type, args.name, inputs);
                    const durationMs = Date.now() - started;
                    state.resources.push({ type: args.type, name: args.name, id: made.id, outputs: made.state, serializedProvider: made.serialized, createdMs: started - t0, durationMs });
                    writeState(state);
                    log(`+ ${shortType(args.type)} ${args.name} created (${(durationMs / 1000).toFixed(1)}s)`);
                    return { id: made.id, state: made.state };
                } catch (err) {
                    failure ??= new Error(`${shortType(args.type)} ${args.name}: ${(err as Error).message}`);
                    log(`! ${shortType(args.type)} ${args.name} failed: ${(err as Error).message}`);
                    throw err;
                }
            },
            call(args) {
                throw new Error(`the box has no stand-in for the function ${args.token}`);
            },
        },
        config.project,
        options.stack,
        false,
    );
    const outputs = (await runInPulumiStack(async () => ({ ...require(path.join(REPO_ROOT, "index.ts")) }))) as Record<string, unknown>;
    await pulumi.runtime.disconnect();
    if (failure) throw failure;
    state.outputs = unwrapSecrets(outputs);
    state.finishedMs = Date.now() - t0;
    writeState(state);
    const out = logsDir(options.stack);
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, "outputs.json"), JSON.stringify(redactInputs(outputs), null, 2) + "\n");
    return state;
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
            const host = await ProviderHost.start(resource.serializedProvider, { NODE_EXTRA_CA_CERTS: state.caCertFile }).catch(() => undefined);
            if (!host) continue;
            try {
                const { __provider: _provider, ...props } = resource.outputs;
                // Everything goes with the box anyway: a delete that waits on a VM already gone is cut short.
                let timer: NodeJS.Timeout | undefined;
                const deadline = new Promise<never>((_, reject) => {
                    timer = setTimeout(() => reject(new Error(`no answer within ${DELETE_DEADLINE_MS / 1000}s`)), DELETE_DEADLINE_MS);
                });
                await Promise.race([host.delete(resource.id, props), deadline]).finally(() => clearTimeout(timer));
                log(`- ${shortType(resource.type)} ${resource.name} deleted`);
            } catch (err) {
                log(`- ${shortType(resource.type)} ${resource.name}: delete failed (${(err as Error).message}); removed with the box anyway`);
            } finally {
                await host.kill("SIGKILL");
                await host.close();
            }
        }
        const consoles = path.join(logsDir(state.stack), "console");
        fs.mkdirSync(consoles, { recursive: true });
        for (const vm of state.vms) {
            const file = path.join(vm.dir, "console.log");
            if (fs.existsSync(file)) fs.copyFileSync(file, path.join(consoles, `${vm.name}.log`));
        }
    }
    const stopped = await powerOffAll(path.join(RUN_DIR, "vms"));
    if (stopped.length) log(`- VMs powered off: ${stopped.join(", ")}`);
    if (BoxObjectStore.stop(path.join(RUN_DIR, "minio"))) log("- MinIO stopped");
    removeUnderlay();
    fs.rmSync(RUN_DIR, { recursive: true, force: true });
    log("- box removed (underlay, VMs, MinIO, state)");
}
