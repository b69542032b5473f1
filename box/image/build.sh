#!/usr/bin/env bash
# Builds the box's Debian 12 image from Debian's archive with debootstrap and
# prints the directory holding it: kernel (vmlinuz), initrd (initrd.img) and
# an unpartitioned ext4 root disk (root.qcow2), like a Linode disk. Cached
# under $MESHSTACK_BOX_CACHE (default ~/.cache/meshstack/box), keyed on the
# package list and this script: rebuilt only when either changes. Needs root
# (debootstrap, chroot).
#
#   bash box/image/build.sh            # prints the image directory
set -euo pipefail

readonly SUITE=bookworm
readonly MIRROR="${MESHSTACK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
readonly DISK_SIZE=3G
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache="${MESHSTACK_BOX_CACHE:-$HOME/.cache/meshstack/box}"

log() { printf '[box-image] %s\n' "$*" >&2; }

packages=$(grep -v '^\s*#' "$here/packages.txt" | tr -s ' \n' '\n' | sed '/^$/d' | sort -u | paste -sd, -)
key=$(cat "$here/packages.txt" "$here/build.sh" "$here"/platform/* <(echo "$SUITE $MIRROR $DISK_SIZE") | sha256sum | cut -c1-16)
out="$cache/images/debian12-$key"
if [ -f "$out/ready" ]; then
  echo "$out"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || { log "building the image needs root (debootstrap, chroot)"; exit 1; }
for tool in debootstrap mkfs.ext4 qemu-img; do
  command -v "$tool" >/dev/null || { log "$tool is missing; run scripts/setup.sh"; exit 1; }
done

mkdir -p "$cache/images" "$cache/debs"
work=$(mktemp -d "$cache/images/.build-XXXXXX")
cleanup() {
  for fs in proc sys dev/pts dev; do umount -l "$work/root/$fs" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

started=$SECONDS
log "debootstrap $SUITE from $MIRROR (key $key; first build takes several minutes)"
nice debootstrap --cache-dir="$cache/debs" --include="$packages" "$SUITE" "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
  tail -n 40 "$work/debootstrap.log" >&2
  log "debootstrap failed"
  exit 1
}
log "debootstrap done in $((SECONDS - started))s; configuring"

root="$work/root"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C DEBIAN_FRONTEND=noninteractive "$@"; }

# Per-instance identity is made at first boot, as on a cloud image.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
: >"$root/etc/hostname"
cat >"$root/etc/fstab" <<'EOF'
/dev/vda / ext4 errors=remount-ro 0 1
EOF
cat >"$root/etc/network/interfaces" <<'EOF'
# cloud-init writes the interfaces it is given to interfaces.d.
source /etc/network/interfaces.d/*
auto lo
iface lo inet loopback
EOF

# en_US.UTF-8 is what cloud-init's locale module sets; generating it at boot
# costs minutes under emulation.
sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' "$root/etc/locale.gen"
in_root locale-gen >/dev/null
echo 'LANG=en_US.UTF-8' >"$root/etc/default/locale"

cat >"$root/etc/cloud/cloud.cfg.d/90-meshstack-box.cfg" <<'EOF'
# meshstack box: the seed disk (NoCloud) stands in for Linode Metadata.
datasource_list: [ NoCloud, None ]
# Linode installs an instance's authorized keys for root.
disable_root: false
EOF

install -m 0755 "$here/platform/meshstack-box-platform" "$root/usr/local/sbin/meshstack-box-platform"
install -m 0644 "$here/platform/meshstack-box-platform.service" "$root/etc/systemd/system/meshstack-box-platform.service"
in_root systemctl enable meshstack-box-platform.service >/dev/null 2>&1

# Nodes run apt-get update at first boot (through the box's apt cache, from
# the seed disk); the translations are 6 MB of the 15 MB nobody reads.
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/90meshstack-box-no-translations"

# Nothing from the build host leaks in; apt starts from fresh lists at boot, as on Linode.
in_root apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/tmp/* "$root"/var/log/*.log

kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n 1)
initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort | tail -n 1)
if [ -z "$kernel" ] || [ -z "$initrd" ]; then log "no kernel or initrd in /boot"; exit 1; fi
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
basename "$kernel" | sed 's/^vmlinuz-//' >"$work/kernel-version"

log "writing the ext4 root disk ($DISK_SIZE)"
mkfs.ext4 -q -F -L root -d "$root" "$work/root.raw" "$DISK_SIZE" >&2
qemu-img convert -O qcow2 "$work/root.raw" "$work/root.qcow2"
rm -f "$work/root.raw"
echo "$packages" | tr , '\n' >"$work/packages"
# The box's apt cache serves the host the image's sources.list names, and only it.
echo "$MIRROR" >"$work/mirror"

mkdir -p "$out"
for file in vmlinuz initrd.img kernel-version root.qcow2 packages mirror; do mv "$work/$file" "$out/$file"; done
touch "$out/ready"
# Older images (other package lists) are not used again.
find "$cache/images" -mindepth 1 -maxdepth 1 -name 'debian12-*' ! -path "$out" -exec rm -rf {} +
log "image ready in $out after $((SECONDS - started))s"
echo "$out"
