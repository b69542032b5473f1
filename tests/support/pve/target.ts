/**
 * Where the GoldenGuest tests send their API calls: the Proxmox VE API
 * emulator by default, or a real Proxmox VE host when MESHSTACK_PVE_ENDPOINT
 * is set (with MESHSTACK_PVE_NODE, MESHSTACK_PVE_STORAGE,
 * MESHSTACK_PVE_TOKEN_ID, MESHSTACK_PVE_TOKEN_SECRET, MESHSTACK_PVE_ARCHIVE,
 * MESHSTACK_PVE_VMID_BASE and one of MESHSTACK_PVE_CA_PEM_FILE or
 * MESHSTACK_PVE_TLS_FINGERPRINT). The archive must be a prepared golden and
 * the VMIDs from the base on free.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as tls from "tls";
import { PVE_PRIVILEGES } from "./access";
import { PveEmulator, PveEmulatorOptions } from "./emulator";

export interface PveTarget {
    endpoint: string;
    node: string;
    storage: string;
    tokenId: string;
    tokenSecret: string;
    caBundlePem: string;
    tlsFingerprint: string;
    archive: string;
    vmidBase: number;
    /** Set when the target is the emulator started here. */
    emulator?: PveEmulator;
    stop(): Promise<void>;
}

/** The archive's MAC and hostname as a golden build container leaves them. */
export const EMULATED_ARCHIVE_MAC = "BC:24:11:63:43:F4";
export const EMULATED_ARCHIVE_HOSTNAME = "meshstack-golden";

export async function startPveEmulator(options: PveEmulatorOptions & { prepared?: boolean; archive?: string } = {}): Promise<PveTarget> {
    const tokenId = "meshstack@pve!deploy";
    const tokenSecret = crypto.randomUUID();
    const emulator = await new PveEmulator({ tokens: [{ id: tokenId, secret: tokenSecret, privileges: PVE_PRIVILEGES }], ...options }).start();
    const archive = options.archive ?? "local:backup/vzdump-lxc-9000-2026_06_09-20_41_10.tar.zst";
    emulator.addArchive(archive, {
        ...(options.prepared === false ? {} : { description: "meshstack-golden-prepared v1" }),
        arch: "amd64", cores: "2", memory: "2048", swap: "512", features: "nesting=1,keyctl=1", unprivileged: "1", ostype: "debian",
        hostname: EMULATED_ARCHIVE_HOSTNAME, rootfs: "local-lvm:vm-9000-disk-0,size=8G",
        net0: `name=eth0,bridge=vmbr0,hwaddr=${EMULATED_ARCHIVE_MAC},ip=dhcp,type=veth`,
    });
    return {
        endpoint: emulator.url, node: emulator.node, storage: "local-lvm", tokenId, tokenSecret,
        caBundlePem: emulator.caPem, tlsFingerprint: "", archive, vmidBase: 9101, emulator,
        stop: () => emulator.stop(),
    };
}

function required(name: string): string {
    const value = process.env[name];
    if (!value) throw new Error(`${name} must be set when MESHSTACK_PVE_ENDPOINT points the tests at a real Proxmox VE host`);
    return value;
}

/** The emulator unless MESHSTACK_PVE_ENDPOINT names a real host. */
export async function startPveTarget(options: PveEmulatorOptions = {}): Promise<PveTarget> {
    if (!process.env.MESHSTACK_PVE_ENDPOINT) return startPveEmulator(options);
    return {
        endpoint: required("MESHSTACK_PVE_ENDPOINT"),
        node: required("MESHSTACK_PVE_NODE"),
        storage: required("MESHSTACK_PVE_STORAGE"),
        tokenId: required("MESHSTACK_PVE_TOKEN_ID"),
        tokenSecret: required("MESHSTACK_PVE_TOKEN_SECRET"),
        caBundlePem: process.env.MESHSTACK_PVE_CA_PEM_FILE ? fs.readFileSync(process.env.MESHSTACK_PVE_CA_PEM_FILE, "utf8") : "",
        tlsFingerprint: process.env.MESHSTACK_PVE_TLS_FINGERPRINT ?? "",
        archive: required("MESHSTACK_PVE_ARCHIVE"),
        vmidBase: Number(process.env.MESHSTACK_PVE_VMID_BASE ?? 9101),
        stop: async () => undefined,
    };
}

/**
 * One API call as an operator or another tool would make it, outside the
 * provider: how the tests change a guest behind the provider's back on the
 * emulator and on a real host alike. Resolves with `data`; rejects with the
 * status and reason phrase.
 */
export async function pveApi(target: PveTarget, method: string, apiPath: string, params: Record<string, string> = {}): Promise<any> {
    const form = new URLSearchParams(params).toString();
    const withBody = method === "POST" || method === "PUT";
    const url = new URL(target.endpoint);
    const pinned = target.tlsFingerprint !== "";
    // Connected and verified before the token is sent: a pinned self-signed certificate by its fingerprint, as the provider does.
    const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({ host: url.hostname, port: Number(url.port || 443), ca: target.caBundlePem || undefined, rejectUnauthorized: !pinned });
        s.once("error", reject);
        s.once("secureConnect", () => {
            const got = s.getPeerCertificate().fingerprint256 ?? "";
            if (pinned && got.replace(/:/g, "").toUpperCase() !== target.tlsFingerprint.replace(/:/g, "").toUpperCase()) {
                s.destroy();
                reject(new Error(`certificate fingerprint ${got} is not the pinned ${target.tlsFingerprint}`));
            } else resolve(s);
        });
    });
    return new Promise((resolve, reject) => {
        const req = http.request({
            method, path: `/api2/json${apiPath}${!withBody && form ? `?${form}` : ""}`, createConnection: () => socket,
            headers: {
                Host: url.host,
                Authorization: `PVEAPIToken=${target.tokenId}=${target.tokenSecret}`,
                ...(withBody ? { "Content-Type": "application/x-www-form-urlencoded", "Content-Length": Buffer.byteLength(form) } : {}),
            },
        }, (res) => {
            let text = "";
            res.on("data", (chunk) => (text += chunk));
            res.on("end", () => {
                socket.destroy();
                if (res.statusCode === 200) resolve(JSON.parse(text).data);
                else reject(new Error(`${method} ${apiPath}: HTTP ${res.statusCode} ${res.statusMessage} ${text}`));
            });
        });
        req.on("error", reject);
        if (withBody) req.write(form);
        req.end();
    });
}

/** Waits until a task has stopped; rejects unless it ended OK. */
export async function pveWaitTask(target: PveTarget, upid: string, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const status = await pveApi(target, "GET", `/nodes/${target.node}/tasks/${encodeURIComponent(upid)}/status`).catch(() => undefined);
        if (status?.status === "stopped") {
            if (status.exitstatus !== "OK") throw new Error(`task ${upid} ended with ${status.exitstatus}`);
            return;
        }
        if (Date.now() >= deadline) throw new Error(`task ${upid} still running after ${timeoutMs} ms`);
        await new Promise((done) => setTimeout(done, 50));
    }
}
