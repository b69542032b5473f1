import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { Registration, startMockCloud, unwrapSecrets } from "../tooling/mockCloud";
import { redactInputs } from "../tooling/plan";
import { withIgnoredChanges } from "../tooling/replacement";
import { ProviderHost } from "../tests/harness/dynamicProviders";
import { deleteDynamic, withoutProvider } from "./dynamicResources";
import { BOX_IMAGE_ID } from "./image";
import { BoxTls, randomOutputs } from "./material";
import { applyFirewall, attachTap, FirewallSpec, UNDERLAY, vmUnderlayAddress } from "./network";
import { BoxObjectStore } from "./objectStore";
import { logsDir, REPO_ROOT, RUN_DIR } from "./paths";
import { BoxStackConfig } from "./stackConfig";
import { BoxResource, BoxState, BoxVm, writeState } from "./state";
import { BoxStep, DYNAMIC_PREFIX, dynamicStep, FIREWALL_TYPE, INSTANCE_TYPE, OBJECT_STORAGE_KEY_TYPE, otherStep, shortType, STEP_MARK } from "./steps";
import { BootImage, bootImageAt, macAddress, powerOff, QemuVm } from "./vm";

/** What one registration came to: the step, why, and the resource's id and outputs. */
interface Applied {
    step: BoxStep;
    why: string[];
    made: { id: string; state: Record<string, any>; serialized?: string };
}
const LINODE_ID_BASE = 40_000_000;

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

function firewallSpecOf(values: Record<string, any>): FirewallSpec {
    return { inboundPolicy: values.inboundPolicy, inbounds: values.inbounds, outboundPolicy: values.outboundPolicy, outbounds: values.outbounds };
}

/**
 * One `up` of the program against the box: the first (nothing exists) or a
 * later one against the box's state, deciding per resource as the engine
 * does. What it makes, it records in the state file at once, so `down`
 * removes it even after a crash.
 */
export class BoxDeployment {
    private readonly t0 = Date.now();
    readonly steps = new Map<string, BoxStep>();
    private readonly firewalls = new Map<string, FirewallSpec>();
    /** Resources the program replaced with create-before-delete: deleted once the program is done, as the engine does. */
    private readonly superseded: BoxResource[] = [];
    private readonly tls = new BoxTls();
    /** This `up`'s stack config, which the engine hands every dynamic provider, the ones that delete included. */
    private stackConfig: Record<string, string> = {};
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
            case OBJECT_STORAGE_KEY_TYPE: {
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
        // Linode revokes a deleted key at once; so does MinIO once its user is gone.
        else if (resource.type === OBJECT_STORAGE_KEY_TYPE) this.store.deleteScopedKey(String(resource.outputs.accessKey));
        else if (resource.serializedProvider) {
            const failed = await deleteDynamic(resource, this.state.caCertFile, this.stackConfig);
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
        const old = this.state.resources.find((r) => r.name === name);
        const programInputs = unwrapSecrets(registration.inputs) as Record<string, any>;
        // What an existing resource ignores keeps its value from state, for its diff and for a replacement (an instance's SSH keys).
        const inputs = old ? withIgnoredChanges(old.inputs, programInputs, registration.options?.ignoreChanges) as Record<string, any> : programInputs;
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
            const { step, why } = dynamicStep(diff, forced);
            if (step === "replace") {
                await this.supersede(old, diff.deleteBeforeReplace === true);
                const { id, outs } = await host.create(checked);
                return { step, why, made: { id, state: { ...outs, __provider: serialized }, serialized } };
            }
            if (step === "same") return { step, why, made: { id: old.id, state: old.outputs } };
            const { outs } = await host.update(old.id, olds, checked);
            return { step, why, made: { id: old.id, state: { ...outs, __provider: serialized }, serialized } };
        });
    }

    /** Any other provider: left, or replaced by a new one (steps.ts refuses what the box cannot replace). */
    private async applyOther(old: BoxResource, inputs: Record<string, any>, forced: boolean, deleteBeforeReplace: boolean): Promise<Applied> {
        const { step, why } = otherStep(old, inputs, forced);
        if (step === "same") return { step, why, made: { id: old.id, state: old.outputs } };
        await this.supersede(old, deleteBeforeReplace);
        return { step, why, made: await this.create(old.type, old.name, inputs) };
    }

    /** A replaced resource goes before its replacement is made (deleteBeforeReplace), else once the program is done. */
    private async supersede(old: BoxResource, deleteBeforeReplace: boolean): Promise<void> {
        if (deleteBeforeReplace) await this.remove(old);
        else this.superseded.push(old);
    }

    /** Runs index.ts under the mock runtime, every registration carried out by `apply`. Resolves with the stack outputs. */
    async run(config: BoxStackConfig, forced: Set<string>): Promise<Record<string, unknown>> {
        this.stackConfig = config.values;
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
