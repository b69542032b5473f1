/**
 * Value shapes more than one section checks: Linode ids, firewall CIDRs,
 * endpoint URLs and PEM certificates.
 */
import { cidrNetwork, isCidr } from "../ip";
import { containsPrivateKey } from "../secretText";
import { Check } from "./keySpec";

export const LINODE_REGION = /^[a-z]{2}-[a-z]+(-[0-9])?$/;
export const LINODE_TYPE = /^g[0-9]+-[a-z0-9-]+$/;
export const LINODE_IMAGE = /^(linode|private)\/[A-Za-z0-9._-]+$/;
export const isLinodeImage = (value: string) => LINODE_IMAGE.test(value);

/** The end of every message that finds a private key where it does not belong. */
export const EXPOSED = "and replace that key: it is now in a stack file that is not encrypted";

/** A PEM certificate (or several); a private key here is named by fingerprint, never echoed. */
export function certificatePem(what: string, keyHome: string, firstLine: RegExp): Check {
    return (v) => {
        if (typeof v !== "string") return "is not a string";
        if (containsPrivateKey(v)) return `is a private key, not ${what}: ${keyHome}, ${EXPOSED}`;
        return firstLine.test(v) ? undefined : `is not ${what} (no -----BEGIN CERTIFICATE----- line)`;
    };
}

/**
 * A firewall source: a CIDR written as its network. With host bits set
 * (`10.0.0.1/8`) the firewall opens the whole network, which is almost never
 * what was meant; the message offers both readings.
 */
export const cidr: Check = (v) => {
    if (typeof v !== "string" || !isCidr(v)) return "is not a CIDR";
    const { network, hostBitsSet } = cidrNetwork(v);
    if (!hostBitsSet) return undefined;
    const [address] = v.split("/");
    const single = address.includes(":") ? 128 : 32;
    return `has host bits set, so the firewall would open all of ${network}; write ${network} for the whole network or ${address}/${single} for the one address`;
};
export const cidrIdentity = (item: string) => (isCidr(item) ? cidrNetwork(item).network : item);

/**
 * An endpoint URL with no path. Checked as the URL parser will read it, so
 * a port past 65535 is named here instead of crashing later as `Invalid URL`.
 */
export function endpointUrl(schemes: string[]): Check {
    return (v) => {
        if (typeof v !== "string") return "is not a string";
        const match = /^([a-z]+):\/\/([^/\s?#]+)\/?$/.exec(v);
        if (!match || !schemes.includes(match[1])) return `is not a ${schemes.join(" or ")} URL with a host and no path`;
        const port = /^(?:\[[^\]]*\]|[^:]*):([0-9]*)$/.exec(match[2])?.[1];
        if (port !== undefined && (port === "" || Number(port) < 1 || Number(port) > 65535)) return `has port ${JSON.stringify(port)}, not a port from 1 to 65535`;
        try {
            new URL(v);
        } catch {
            return "is not a URL (its host cannot be read)";
        }
        return undefined;
    };
}
