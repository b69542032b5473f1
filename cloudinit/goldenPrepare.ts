/**
 * Rendering for the Proxmox VE golden image: the prepare script that runs
 * inside the build container, its first-boot unit, and the host-side build
 * script (run as root on the Proxmox VE host over SSH) that creates the
 * build container, prepares, stops and archives it.
 *
 * Why the identity clean and the unit both exist: a restore regenerates
 * neither the SSH host keys nor /etc/machine-id (only creating a container
 * from a template does). Left in, every guest shares the golden's host keys
 * and machine-id; removed without a replacement, systemd makes a new
 * machine-id at first boot but nothing makes host keys, and ssh.service
 * fails. The one-shot unit below makes the keys before ssh.service starts.
 */
import * as crypto from "crypto";

export const FIRST_BOOT_UNIT_NAME = "meshstack-ssh-hostkeys.service";
export const FIRST_BOOT_UNIT_PATH = `/etc/systemd/system/${FIRST_BOOT_UNIT_NAME}`;
/** Always installed: a guest without sshd cannot be managed. */
export const GOLDEN_BASE_PACKAGES = ["openssh-server", "ca-certificates"];
/** The description line that marks an archive as prepared; GoldenGuest refuses archives without it. */
export const GOLDEN_PREPARED_MARKER = "meshstack-golden-prepared";
/** Debian package names: lowercase letters, digits, + - . */
const DEBIAN_PACKAGE = /^[a-z0-9][a-z0-9+.-]+$/;

export function renderFirstBootUnit(): string {
    return [
        "[Unit]",
        "Description=Generate missing SSH host keys (first boot of a restored golden-image guest)",
        "Before=ssh.service ssh.socket",
        // Acts only while no host key exists: the first boot after a restore.
        "ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key",
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=/usr/bin/ssh-keygen -A",
        "RemainAfterExit=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target ssh.service",
        "",
    ].join("\n");
}

export interface GoldenPrepareParams {
    /** Debian packages guests need besides GOLDEN_BASE_PACKAGES. */
    packages?: string[];
}

export function goldenPackages(params: GoldenPrepareParams): string[] {
    const packages = [...new Set([...GOLDEN_BASE_PACKAGES, ...(params.packages ?? [])])];
    const bad = packages.filter((p) => !DEBIAN_PACKAGE.test(p));
    if (bad.length) throw new Error(`not Debian package names: ${bad.join(", ")}; allowed: lowercase letters, digits, + - . (such as docker.io)`);
    return packages;
}

/** Runs as root inside the build container (or a chroot of it). Safe to re-run. */
export function renderGoldenPrepareScript(params: GoldenPrepareParams = {}): string {
    const packages = goldenPackages(params);
    return `#!/bin/bash
# meshstack golden-image prepare: install what guests need, then reset
# identity so every restored guest gets its own.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
log() { printf '[golden-prepare] %s\\n' "$*"; }

log "installing: ${packages.join(" ")}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends ${packages.join(" ")}

log "installing ${FIRST_BOOT_UNIT_NAME}"
cat > ${FIRST_BOOT_UNIT_PATH} <<'UNIT'
${renderFirstBootUnit()}UNIT
systemctl enable ${FIRST_BOOT_UNIT_NAME}

log "identity clean"
apt-get clean
rm -rf /var/lib/apt/lists/*
# Host keys: made again at first boot by ${FIRST_BOOT_UNIT_NAME}.
rm -f /etc/ssh/ssh_host_*
# An empty machine-id makes systemd generate a new one at first boot.
truncate -s 0 /etc/machine-id
if [ -d /var/lib/dbus ]; then
  rm -f /var/lib/dbus/machine-id
  ln -s /etc/machine-id /var/lib/dbus/machine-id
fi
# The hostname comes from the guest's config at restore.
rm -f /etc/hostname
find /var/log -type f -delete
rm -f /root/.bash_history
log "done"
`;
}

/** Identifies one rendering of the prepare script; the archive's marker carries it. */
export function prepareScriptDigest(script: string): string {
    return crypto.createHash("sha256").update(script).digest("hex").slice(0, 16);
}

export interface GoldenBuildParams {
    /** VMID of the throwaway build container. */
    vmid: number;
    /** Container template volume id, e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst */
    template: string;
    /** Storage for the build container's rootfs. */
    storage: string;
    rootfsGiB: number;
    /** Bridge the build container reaches the package mirror through. */
    bridge: string;
    /** Storage the archive is written to (content type backup). */
    backupStorage: string;
    hostname: string;
    prepareScript: string;
}

function shellQuote(value: string): string {
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs as root@pam on the Proxmox VE host (creating a container with
 * keyctl=1 needs root). Prints the archive's volume id as its last line.
 * The marker is written only after the prepare script succeeded, so a
 * failed build never yields an archive GoldenGuest accepts.
 */
export function renderGoldenBuildScript(p: GoldenBuildParams): string {
    const marker = `${GOLDEN_PREPARED_MARKER} v1 prepare=${prepareScriptDigest(p.prepareScript)}`;
    const prepareB64 = Buffer.from(p.prepareScript, "utf8").toString("base64");
    return `#!/bin/bash
# meshstack golden-image build on the Proxmox VE host.
set -euo pipefail
vmid=${p.vmid}
log() { printf '[golden-build] %s\\n' "$*" >&2; }
cleanup() {
  if pct status "$vmid" >/dev/null 2>&1; then
    pct stop "$vmid" >/dev/null 2>&1 || true
    pct destroy "$vmid" --purge 1 >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

if pct status "$vmid" >/dev/null 2>&1; then
  log "CT $vmid exists: a build container left by an earlier failed build; removing it"
  cleanup
fi
log "creating build container $vmid from ${p.template}"
pct create "$vmid" ${shellQuote(p.template)} --hostname ${shellQuote(p.hostname)} \\
  --unprivileged 1 --features nesting=1,keyctl=1 --rootfs ${shellQuote(`${p.storage}:${p.rootfsGiB}`)} \\
  --net0 ${shellQuote(`name=eth0,bridge=${p.bridge},ip=dhcp`)} --onboot 0 >&2
pct start "$vmid" >&2
# The prepare script needs the package mirror: wait for a default route.
for _ in $(seq 1 60); do
  if [ -n "$(pct exec "$vmid" -- ip -4 route show default 2>/dev/null)" ]; then break; fi
  sleep 2
done
log "running the prepare script"
printf '%s' ${shellQuote(prepareB64)} | base64 -d | pct exec "$vmid" -- /bin/bash -s >&2
pct stop "$vmid" >&2
pct set "$vmid" --description ${shellQuote(marker)} >&2
log "archiving to ${p.backupStorage}"
vzdump "$vmid" --storage ${shellQuote(p.backupStorage)} --mode stop --compress zstd >&2
volid=$(pvesm list ${shellQuote(p.backupStorage)} --content backup --vmid "$vmid" | awk 'NR > 1 { print $1 }' | sort | tail -n 1)
if [ -z "$volid" ]; then
  log "vzdump wrote no archive for CT $vmid to ${p.backupStorage}"
  exit 1
fi
echo "$volid"
`;
}

/**
 * Removes the archive a build made. The command provider hands the build's
 * stdout to the delete command as PULUMI_COMMAND_STDOUT, over SSH only where
 * the node's sshd accepts that variable (AcceptEnv PULUMI_COMMAND_*);
 * without it the archive is left and the script says so.
 */
export function renderGoldenDeleteScript(): string {
    return `#!/bin/bash
set -euo pipefail
volid=$(printf '%s\\n' "\${PULUMI_COMMAND_STDOUT:-}" | tail -n 1)
if [ -z "$volid" ]; then
  echo "golden archive unknown here (sshd did not accept PULUMI_COMMAND_STDOUT); remove it with pvesm free" >&2
elif pvesm path "$volid" >/dev/null 2>&1; then
  pvesm free "$volid"
fi
`;
}
