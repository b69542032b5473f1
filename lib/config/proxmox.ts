/**
 * Proxmox VE golden-image guests: the endpoint and its TLS check, the API
 * token, the guests, and the golden archive (an existing one, or built by
 * the stack from a template over SSH). All off while proxmoxGuests is empty.
 */
import { GUEST_SPEC_ALLOWED, guestListProblem, GuestSpec, parseGuestList } from "../proxmoxGuests";
import { CheckedValues, each, intRange, KeySpec, matches, ParsedValues, pemBlock } from "./keySpec";
import { ConfigError, qualify } from "./report";
import { certificatePem, endpointUrl } from "./shapes";

/** The Proxmox VE part; present only when guests are configured. */
export interface ProxmoxConfig {
    endpoint: string;
    node: string;
    tokenId: string;
    /** Plain text here; components make it a secret output. */
    tokenSecret: string;
    storage: string;
    tls: { caBundlePem?: string; fingerprint?: string };
    guests: GuestSpec[];
    /** Exactly one of archive and golden. */
    archive?: string;
    allowUnpreparedArchive: boolean;
    golden?: {
        template: string;
        vmid: number;
        packages: string[];
        backupStorage: string;
        bridge: string;
        sshHost: string;
        sshPrivateKey: string;
    };
}

/** Written above these keys in Pulumi.yaml, for whoever reads it there. */
export const PROXMOX_KEYS_COMMENT = [
    "Proxmox VE golden-image guests: all off while proxmoxGuests is empty.",
    "Secrets (proxmoxTokenSecret, proxmoxSshPrivateKey) are set with",
    "`pulumi config set --secret`; lib/config/ refuses them in clear text.",
];

const PVE_TOKEN_ID = /^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+![A-Za-z][A-Za-z0-9._-]*$/;
const PVE_STORAGE_ID = /^[A-Za-z][A-Za-z0-9._-]*$/;

export const proxmoxKeys = {
    proxmoxEndpoint: {
        type: "string", default: "", optional: true, check: endpointUrl(["https"]),
        description: "Proxmox VE API endpoint for the golden-image guests; unset: no Proxmox part.",
        allowed: "an https URL with no path and a port from 1 to 65535, such as https://pve.example.net:8006",
    },
    proxmoxNode: {
        type: "string", default: "", optional: true, check: matches(/^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/),
        description: "Proxmox VE node the guests run on.", allowed: "a node name such as pve",
    },
    proxmoxTokenId: {
        type: "string", default: "", optional: true, check: matches(PVE_TOKEN_ID),
        description: "Proxmox VE API token the guests are managed with (needs VM.Allocate, VM.Audit, VM.Config.*, VM.PowerMgmt, Datastore.Audit, Datastore.AllocateSpace).",
        allowed: "USER@REALM!TOKENID, such as meshstack@pve!deploy",
    },
    proxmoxTokenSecret: {
        type: "string", default: "", optional: true, secret: true, check: matches(/^[A-Za-z0-9-]{8,}$/),
        offlineStandIn: "00000000-0000-4000-8000-000000000000",
        description: "Secret of proxmoxTokenId.", allowed: "the token's secret (a UUID) set with --secret",
    },
    proxmoxStorage: {
        type: "string", default: "", optional: true, check: matches(PVE_STORAGE_ID),
        description: "Storage for the guests' rootfs and mount points.", allowed: "a storage id such as local-lvm",
    },
    proxmoxArchive: {
        type: "string", default: "", optional: true, check: matches(/^[A-Za-z][A-Za-z0-9._-]*:[^\s]+$/),
        description: "Golden archive the guests are restored from; unset: built by the stack from proxmoxGoldenTemplate.",
        allowed: "a backup volume id such as local:backup/vzdump-lxc-9000-2026_06_09-20_41_10.tar.zst",
    },
    proxmoxAllowUnpreparedArchive: {
        type: "boolean", default: false,
        description: "Restore proxmoxArchive even though it lacks the prepared marker (you cleaned SSH host keys and machine-id yourself).",
        allowed: "true or false",
    },
    proxmoxCaBundlePem: {
        type: "string", default: "", optional: true,
        check: certificatePem("a CA certificate bundle", "the endpoint needs only the CA's certificates", /-----BEGIN CERTIFICATE-----/),
        description: "CA certificates that sign the Proxmox VE endpoint's certificate; unset: the system CAs.",
        allowed: "PEM certificates",
    },
    proxmoxTlsFingerprint: {
        type: "string", default: "", optional: true, check: matches(/^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/),
        description: "SHA-256 fingerprint the endpoint's certificate must have, instead of a CA check (the node's self-signed certificate).",
        allowed: "32 colon-separated hex pairs, as `pvenode cert info` prints them",
    },
    proxmoxGuests: {
        type: "array", default: [], check: guestListProblem,
        description: "Golden-image guests to restore; empty: no Proxmox part.",
        allowed: GUEST_SPEC_ALLOWED,
    },
    proxmoxGoldenTemplate: {
        type: "string", default: "", optional: true, check: matches(/^[A-Za-z][A-Za-z0-9._-]*:vztmpl\/[^\s]+$/),
        description: "Container template the stack builds the golden archive from (over SSH as root on the node), instead of proxmoxArchive.",
        allowed: "a template volume id such as local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    },
    proxmoxGoldenVmid: {
        type: "integer", default: 9000, check: intRange(100, 999_999_999),
        description: "VMID of the throwaway container the golden archive is built in.", allowed: "an integer from 100 to 999999999",
    },
    proxmoxGoldenPackages: {
        type: "array", default: [], check: each(matches(/^[a-z0-9][a-z0-9+.-]+$/)),
        description: "Debian packages baked into the golden besides openssh-server and ca-certificates.",
        allowed: "a list of Debian package names such as docker.io",
    },
    proxmoxBackupStorage: {
        type: "string", default: "local", check: matches(PVE_STORAGE_ID),
        description: "Storage the golden archive is written to (content type backup).", allowed: "a storage id such as local",
    },
    proxmoxBridge: {
        type: "string", default: "vmbr0", check: matches(/^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$/),
        description: "Bridge of the golden build container's network (it installs packages).", allowed: "a bridge name such as vmbr0",
    },
    proxmoxSshHost: {
        type: "string", default: "", optional: true, check: matches(/^[A-Za-z0-9.:-]+$/),
        description: "Host the golden is built on over SSH as root; unset: the host of proxmoxEndpoint.",
        allowed: "a hostname or IP address",
    },
    proxmoxSshPrivateKey: {
        type: "string", default: "", optional: true, secret: true, check: matches(/^-----BEGIN ([A-Z]+ )?PRIVATE KEY-----/),
        offlineStandIn: pemBlock("OPENSSH PRIVATE KEY", "offline plan stand-in"),
        description: "SSH private key for root on the Proxmox VE node; needed with proxmoxGoldenTemplate.",
        allowed: "a PEM/OpenSSH private key set with --secret",
    },
} satisfies Record<string, KeySpec>;

const REQUIRED_WITH_GUESTS = ["proxmoxEndpoint", "proxmoxNode", "proxmoxTokenId", "proxmoxTokenSecret", "proxmoxStorage"] as const;

/** With guests configured, what reaching Proxmox VE and finding the archive needs; every gap reported. */
export function proxmoxRules(v: ParsedValues): ConfigError[] {
    const guests = v.proxmoxGuests as string[] | undefined;
    if (!guests?.length) return [];
    const errors: ConfigError[] = [];
    for (const key of REQUIRED_WITH_GUESTS) {
        if (v[key] === undefined) errors.push({ key: qualify(key), message: `is required when proxmoxGuests is set; allowed: ${proxmoxKeys[key].allowed}` });
    }
    const hasArchive = v.proxmoxArchive !== undefined;
    const hasTemplate = v.proxmoxGoldenTemplate !== undefined;
    if (hasArchive === hasTemplate) {
        errors.push({
            key: qualify(hasArchive ? "proxmoxGoldenTemplate" : "proxmoxArchive"),
            ...(hasArchive ? { value: String(v.proxmoxGoldenTemplate) } : {}),
            message: hasArchive
                ? "must not be set together with proxmoxArchive; allowed: one of proxmoxArchive (an existing golden) or proxmoxGoldenTemplate (the stack builds it)"
                : "is required when proxmoxGuests is set (or proxmoxGoldenTemplate); allowed: " + proxmoxKeys.proxmoxArchive.allowed,
        });
    }
    if (hasTemplate && v.proxmoxSshPrivateKey === undefined) {
        errors.push({ key: qualify("proxmoxSshPrivateKey"), message: "is required when proxmoxGoldenTemplate is set (the golden is built over SSH as root); allowed: " + proxmoxKeys.proxmoxSshPrivateKey.allowed });
    }
    if (v.proxmoxCaBundlePem !== undefined && v.proxmoxTlsFingerprint !== undefined) {
        errors.push({ key: qualify("proxmoxTlsFingerprint"), value: String(v.proxmoxTlsFingerprint), message: "must not be set together with proxmoxCaBundlePem; allowed: one of the two, or neither for the system CAs" });
    }
    // The golden build destroys and recreates its container on every rebuild: a guest on that VMID would go with it.
    const goldenVmid = v.proxmoxGoldenVmid;
    if (hasTemplate && typeof goldenVmid === "number") {
        parseGuestList(guests).forEach((guest, i) => {
            if (guest.vmid !== goldenVmid) return;
            errors.push({
                key: qualify("proxmoxGuests"), value: guests[i],
                message: `item ${i}: guest ${guest.hostname} has vmid ${goldenVmid}, the VMID of the golden build container (meshstack:proxmoxGoldenVmid): the next golden rebuild destroys it; allowed: a vmid other than ${goldenVmid}, or another proxmoxGoldenVmid`,
            });
        });
    }
    return errors;
}

export function proxmoxConfig(v: CheckedValues): ProxmoxConfig | undefined {
    const guests = v.proxmoxGuests as string[];
    if (!guests.length) return undefined;
    const endpointHost = new URL(v.proxmoxEndpoint as string).hostname.replace(/^\[|\]$/g, "");
    return {
        endpoint: v.proxmoxEndpoint,
        node: v.proxmoxNode,
        tokenId: v.proxmoxTokenId,
        tokenSecret: v.proxmoxTokenSecret,
        storage: v.proxmoxStorage,
        tls: { caBundlePem: v.proxmoxCaBundlePem, fingerprint: v.proxmoxTlsFingerprint },
        guests: parseGuestList(guests),
        archive: v.proxmoxArchive,
        allowUnpreparedArchive: v.proxmoxAllowUnpreparedArchive,
        golden: v.proxmoxGoldenTemplate
            ? {
                template: v.proxmoxGoldenTemplate,
                vmid: v.proxmoxGoldenVmid,
                packages: v.proxmoxGoldenPackages,
                backupStorage: v.proxmoxBackupStorage,
                bridge: v.proxmoxBridge,
                sshHost: v.proxmoxSshHost ?? endpointHost,
                sshPrivateKey: v.proxmoxSshPrivateKey,
            }
            : undefined,
    };
}
