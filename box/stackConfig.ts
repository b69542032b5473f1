/**
 * The config a box run hands the program: the stack file as the Pulumi CLI
 * reads it, the box's machine config (its mirror, its operator, its slower
 * boots), then the caller's overrides; and what the box refuses to stand in
 * for.
 */
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { CONFIG_NAMESPACE, formatConfigErrors, parseStackConfig } from "../lib/config";
import { NATS_SERVER_RELEASE } from "../lib/natsRelease";
import { natsNodeName } from "../lib/natsRollout";
import { cliStackConfigOf } from "../tooling/cliConfig";
import { toolPath } from "../tests/support/tools";
import { BOX_IMAGE_ID } from "./image";
import { UNDERLAY } from "./network";
import { REPO_ROOT } from "./paths";

/** Stack config as the mock runtime takes it. */
export interface BoxStackConfig {
    values: Record<string, string>;
    secretKeys: string[];
    project: string;
}

/** Stack config as Pulumi hands it to the program: the stack file, then the box's and the caller's overrides. */
export function boxConfig(stack: string, overrides: Record<string, string>): BoxStackConfig {
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

/**
 * The config the box sets for every run of a stack: its mirror, its operator (this host) and its slower boots,
 * and the checksum of the nats-server release the run asks for (`natsServerVersion`), which setup built.
 */
export function boxMachineConfig(storeUrl: string, sshPublicKey: string, natsServerVersion = NATS_SERVER_RELEASE.version): Record<string, string> {
    // The nodes download nats-server from the box's mirror and check its own checksum.
    const sha256 = fs.readFileSync(`${natsServerTarball(natsServerVersion)}.sha256`, "utf8").split(/\s+/)[0];
    return {
        natsServerDownloadUrl: `${storeUrl}/mirror/nats-server/{version}/nats-server-{version}-linux-{arch}.tar.gz`,
        natsServerSha256Amd64: sha256,
        // The box's VMs are amd64 and setup builds no arm64 release. The config refuses the pinned release's arm64
        // checksum beside another version, so another version gets the amd64 tarball's: an arm64 node would refuse those bytes.
        ...(natsServerVersion === NATS_SERVER_RELEASE.version ? {} : { natsServerSha256Arm64: sha256 }),
        // The box's operator is this host: break-glass SSH with the box's key, from the host's underlay address.
        sshAuthorizedKeys: JSON.stringify([sshPublicKey]),
        breakGlassSshCidrs: JSON.stringify([`${UNDERLAY.hostAddress}/32`]),
        // Emulated VMs on a shared host boot several times slower than a Linode; the deploy's wait is what grows.
        wgPubkeyPollTimeoutSeconds: "1500",
    };
}

/** The tools' mirror of nats-server releases: scripts/setup.sh packs the pinned one and the one before it there. */
function natsServerMirror(): string {
    return path.join(path.dirname(path.dirname(toolPath("nats-server"))), "mirror", "nats-server");
}

/** A nats-server release the setup script put in the tools' mirror (the pinned one unless named), as `up` publishes it to the box's own. */
export function natsServerTarball(version = NATS_SERVER_RELEASE.version): string {
    const tarball = path.join(natsServerMirror(), version, `nats-server-${version}-linux-amd64.tar.gz`);
    if (!fs.existsSync(`${tarball}.sha256`)) throw new Error(`${tarball} is missing; run scripts/setup.sh`);
    return tarball;
}
