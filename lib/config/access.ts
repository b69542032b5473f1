/** Break-glass access to every instance: root's SSH keys and the sources that may reach tcp/22. */
import { containsPrivateKey } from "../secretText";
import { Check, CheckedValues, each, KeySpec } from "./keySpec";
import { cidr, cidrIdentity, EXPOSED } from "./shapes";

export interface AccessConfig {
    sshAuthorizedKeys: string[];
    breakGlassSshCidrs: string[];
}

/** Key types root's authorized_keys may hold; the agent's renderer refuses any other (cloudinit/agent.ts hands it this list). */
export const SSH_KEY_TYPES = ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"];

/**
 * Why a line is not an OpenSSH public key, or undefined. The base64 body is
 * a sequence of length-prefixed fields (RFC 4253 6.6) whose first field
 * repeats the key type; a truncated or pasted-wrong key fails here, at plan
 * time, instead of in every node's agent, which checks each line the same
 * way (cloudinit/agent/agent_render.py) and then applies nothing of the
 * desired state.
 */
function sshPublicKeyProblem(line: string): string | undefined {
    // A line break would make one item two lines of authorized_keys.
    if (/[\x00-\x1f\x7f-\x9f]/.test(line)) return "holds a line break or another control character; one public key per item, on one line";
    const [type, body, ...rest] = line.trim().split(/\s+/);
    void rest;
    if (!SSH_KEY_TYPES.includes(type)) return `does not start with a key type (${SSH_KEY_TYPES.join(", ")}); options such as from= or command= are not allowed`;
    if (!body || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return "has no base64 key body after the type";
    const blob = Buffer.from(body, "base64");
    if (blob.toString("base64") !== body) return "has a key body that is not base64 as ssh-keygen writes it";
    const fields: Buffer[] = [];
    for (let offset = 0; offset < blob.length; ) {
        if (offset + 4 > blob.length) return "has a truncated key body";
        const length = blob.readUInt32BE(offset);
        if (offset + 4 + length > blob.length) return "has a truncated key body";
        fields.push(blob.subarray(offset + 4, offset + 4 + length));
        offset += 4 + length;
    }
    if (fields.length < 2 || fields[0].toString("latin1") !== type) return `has a key body that is not a ${type} key`;
    if (type === "ssh-ed25519" && (fields.length !== 2 || fields[1].length !== 32)) return "has an ssh-ed25519 body whose key is not 32 bytes";
    return undefined;
}

const sshPublicKey: Check = (v) => {
    if (typeof v !== "string") return "is not a string";
    if (containsPrivateKey(v)) return `is a private key, not a public key: give the public key's line instead (ssh-keygen -y -f <key file> prints it), ${EXPOSED}`;
    return sshPublicKeyProblem(v);
};
/** Two lines naming the same key with different comments are one key. */
const sshKeyIdentity = (item: string) => item.trim().split(/\s+/).slice(0, 2).join(" ");

export const accessKeys = {
    sshAuthorizedKeys: {
        type: "array", default: [], check: each(sshPublicKey), itemIdentity: sshKeyIdentity,
        description: "SSH public keys for root on every instance (break-glass access), kept current by each node's agent: adding or removing one replaces no instance.",
        allowed: "a list of OpenSSH public key lines (ssh-ed25519, ssh-rsa, ecdsa-sha2-*, sk-*), one per item: type, base64 body, optional comment, no options",
    },
    breakGlassSshCidrs: {
        type: "array", default: [], check: each(cidr), itemIdentity: cidrIdentity,
        description: "Source CIDRs allowed to reach tcp/22 on every instance. Empty keeps tcp/22 closed.",
        allowed: "a list of distinct IPv4/IPv6 CIDRs written as networks (no host bits), such as 203.0.113.7/32",
    },
} satisfies Record<string, KeySpec>;

export function accessConfig(v: CheckedValues): AccessConfig {
    return { sshAuthorizedKeys: v.sshAuthorizedKeys, breakGlassSshCidrs: v.breakGlassSshCidrs };
}
