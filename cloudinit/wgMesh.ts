/**
 * WireGuard mesh membership, hub and spoke, as data and text. The WireGuard
 * cache node is the hub: it listens on a public port, knows every spoke's
 * public key and /32, and forwards between spokes. A spoke (a NATS node)
 * knows only the hub, reaches the whole subnet through it and keeps its NAT
 * mapping open with keepalives, so spokes need no inbound firewall rule and
 * never need to know each other.
 *
 * A spoke's private key is made at deploy time, so its public key is known
 * before the spoke exists and the hub lists it from its first boot without
 * any runtime registration. wgPublicKeyFromPrivate derives that public key
 * in the program, with no `wg` binary and no dynamic provider.
 */
import * as crypto from "crypto";
import { ipv4ToInt, isCidr, isIpv4 } from "../lib/ip";
import { isWgKey } from "../lib/wgKey";

export const WG_INTERFACE = "wg0";
/** The systemd unit that brings wg0 up from /etc/wireguard/wg0.conf. */
export const WG_QUICK_UNIT = `wg-quick@${WG_INTERFACE}.service`;
export const WG_DIR = "/etc/wireguard";
export const WG_PRIVATE_KEY_PATH = `${WG_DIR}/privatekey`;
export const WG_CONF_PATH = `${WG_DIR}/${WG_INTERFACE}.conf`;
/** NAT mappings on the way to the hub expire after ~30 s on common routers. */
export const WG_PERSISTENT_KEEPALIVE_SECONDS = 25;

/**
 * PKCS#8 DER header of an X25519 private key (RFC 8410): the raw 32 bytes
 * follow. Node 20 will not import a JWK private key without its public `x`,
 * which is what we want to compute, so the key goes in as DER.
 */
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");


/**
 * The public key `wg pubkey` prints for a base64 private key. WireGuard's
 * keys are X25519 keys and both sides clamp the scalar as RFC 7748 says, so
 * OpenSSL's X25519 (through Node's crypto) gives the same result for any 32
 * bytes, clamped or not. The error never echoes the key.
 */
export function wgPublicKeyFromPrivate(privateKeyBase64: string): string {
    if (!isWgKey(privateKeyBase64)) {
        throw new Error("a WireGuard private key must be the base64 of exactly 32 bytes (44 characters ending in '=')");
    }
    const der = Buffer.concat([X25519_PKCS8_PREFIX, Buffer.from(privateKeyBase64, "base64")]);
    const privateKey = crypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" });
    const jwk = crypto.createPublicKey(privateKey).export({ format: "jwk" });
    return Buffer.from(jwk.x!, "base64url").toString("base64");
}

/** A spoke as the hub sees it. */
export interface WgSpokePeer {
    /** Shown as a comment in the hub's config, e.g. the node's hostname. */
    name: string;
    publicKey: string;
    /** The spoke's WireGuard IP, without prefix, e.g. 10.44.0.10. */
    address: string;
}

/** The hub as a spoke sees it. */
export interface WgHub {
    publicKey: string;
    /** Public ip:port. */
    endpoint: string;
}

export interface WgFile {
    path: string;
    content: string;
    permissions: string;
}


function checkSubnet(subnet: string): void {
    const [network] = subnet.split("/");
    if (!isCidr(subnet) || !isIpv4(network)) {
        throw new Error(`WireGuard subnet ${JSON.stringify(subnet)} is not an IPv4 network with prefix, such as 10.44.0.0/24 (from meshstack:wgCacheAddress)`);
    }
}

function checkAddressIn(subnet: string, address: string, what: string): void {
    const [network, prefix] = subnet.split("/");
    const size = 2 ** (32 - Number(prefix));
    if (!isIpv4(address) || Math.floor(ipv4ToInt(address) / size) !== Math.floor(ipv4ToInt(network) / size)) {
        throw new Error(`${what} WireGuard address ${JSON.stringify(address)} is not an IPv4 address inside ${subnet}`);
    }
}

/** Names end up in comments of wg0.conf and in a shell heredoc: keep them plain. */
function checkName(name: string): void {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) {
        throw new Error(`WireGuard peer name ${JSON.stringify(name)} is not allowed; allowed: up to 63 letters, digits and . _ - (a hostname)`);
    }
}

export interface WgPeer {
    /** Shown as a comment, so whoever reads the config knows which member the section is for. */
    comment: string;
    publicKey: string;
    /** ip:port to dial; omitted for a peer that dials in. */
    endpoint?: string;
    allowedIps: string;
    keepaliveSeconds?: number;
}

/** One wg-quick `[Peer]` section, ending in a newline. */
export function renderPeer(peer: WgPeer): string {
    return [
        "[Peer]",
        `# ${peer.comment}`,
        `PublicKey = ${peer.publicKey}`,
        ...(peer.endpoint ? [`Endpoint = ${peer.endpoint}`] : []),
        `AllowedIPs = ${peer.allowedIps}`,
        ...(peer.keepaliveSeconds ? [`PersistentKeepalive = ${peer.keepaliveSeconds}`] : []),
        "",
    ].join("\n");
}

/**
 * The hub's `[Peer]` sections, one per spoke: the spoke's key and its /32,
 * so the hub accepts from a spoke only its own source address and routes
 * to it only its own address. No Endpoint: spokes dial in and the hub
 * learns where they are from their handshakes.
 */
export function renderHubPeers(subnet: string, spokes: readonly WgSpokePeer[]): string {
    checkSubnet(subnet);
    const seen = new Set<string>();
    return spokes
        .map((spoke) => {
            checkName(spoke.name);
            if (!isWgKey(spoke.publicKey)) throw new Error(`spoke ${spoke.name}: public key ${JSON.stringify(spoke.publicKey)} is not the base64 of 32 bytes`);
            checkAddressIn(subnet, spoke.address, `spoke ${spoke.name}:`);
            for (const unique of [spoke.publicKey, spoke.address]) {
                if (seen.has(unique)) throw new Error(`spoke ${spoke.name}: ${unique} is used by another spoke; every spoke needs its own key and address`);
                seen.add(unique);
            }
            return "\n" + renderPeer({ comment: spoke.name, publicKey: spoke.publicKey, allowedIps: `${spoke.address}/32` });
        })
        .join("");
}

export interface SpokeWgParams {
    /** The spoke's WireGuard IP, without prefix, e.g. 10.44.0.10. */
    address: string;
    /** The mesh subnet, e.g. 10.44.0.0/24: the spoke's prefix and everything it reaches through the hub. */
    subnet: string;
    /** base64 of 32 random bytes. A secret. */
    privateKey: string;
    hub: WgHub;
}

/**
 * A spoke's private key file and wg0.conf. As on the hub, the key stays in
 * its own 0600 file and wg-quick loads it with `wg set`, so wg0.conf holds
 * nothing secret. The one peer is the hub with the whole subnet as
 * AllowedIPs: traffic to other spokes goes through the hub.
 */
export function renderSpokeWgFiles(params: SpokeWgParams): { privateKey: WgFile; conf: WgFile } {
    checkSubnet(params.subnet);
    checkAddressIn(params.subnet, params.address, "spoke");
    if (!isWgKey(params.privateKey)) throw new Error("the spoke's WireGuard private key is not the base64 of 32 bytes");
    if (!isWgKey(params.hub.publicKey)) throw new Error(`the hub's WireGuard public key ${JSON.stringify(params.hub.publicKey)} is not the base64 of 32 bytes`);
    const endpoint = /^([0-9.]+):([0-9]{1,5})$/.exec(params.hub.endpoint);
    if (!endpoint || !isIpv4(endpoint[1]) || Number(endpoint[2]) < 1 || Number(endpoint[2]) > 65535) {
        throw new Error(`the hub's WireGuard endpoint ${JSON.stringify(params.hub.endpoint)} is not ipv4:port`);
    }
    const prefix = params.subnet.split("/")[1];
    const conf = [
        "# meshstack WireGuard spoke (rendered by meshstack; edits are overwritten).",
        "[Interface]",
        `Address = ${params.address}/${prefix}`,
        `PostUp = wg set %i private-key ${WG_PRIVATE_KEY_PATH}`,
        "",
        renderPeer({
            comment: "meshstack WireGuard hub (the cache node)",
            publicKey: params.hub.publicKey,
            endpoint: params.hub.endpoint,
            allowedIps: params.subnet,
            keepaliveSeconds: WG_PERSISTENT_KEEPALIVE_SECONDS,
        }),
    ].join("\n");
    return {
        privateKey: { path: WG_PRIVATE_KEY_PATH, content: `${params.privateKey}\n`, permissions: "0600" },
        conf: { path: WG_CONF_PATH, content: conf, permissions: "0600" },
    };
}
