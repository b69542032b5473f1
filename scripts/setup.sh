#!/usr/bin/env bash
# Installs everything the test suite needs: npm packages (the program's and
# the policy pack's), the Debian tools the tests drive (cloud-init,
# wireguard-tools, shellcheck, systemd for systemd-analyze, QEMU for the
# box), and pinned Go builds of the real servers (MinIO, nats-server, the
# nats CLI, actionlint). Safe to re-run: each step is skipped when the
# pinned version is already present.
#
#   bash scripts/setup.sh        everything (the test tiers)
#   bash scripts/setup.sh plan   the npm packages alone: all the offline plan
#                                needs, in about a minute instead of twenty
set -euo pipefail
mode=${1:-all}
case "$mode" in
  all|plan) ;;
  *) echo "usage: bash scripts/setup.sh [plan]" >&2; exit 2 ;;
esac

readonly MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
readonly NATS_SERVER_VERSION="v2.14.7"
# A second, older nats-server, built into its own file only (nothing links
# it): the agent's upgrade tests move real servers between the two.
readonly NATS_SERVER_PREVIOUS_VERSION="v2.12.0"
readonly NATSCLI_VERSION="v0.3.0"
readonly ACTIONLINT_VERSION="v1.7.12"
readonly MC_VERSION="v0.0.0-20250313080218-cf909e1063a9"
# wireguard-go: the userspace WireGuard the integration tests bring up in
# network namespaces, where the host kernel has no wireguard module.
readonly WIREGUARD_GO_VERSION="v0.0.0-20260522210424-ecfc5a8d5446"
# The box tier (real Debian VMs under QEMU): emulator, image tools, the seed
# ISO, the per-VM firewall (nftables also checks the nodes' metadata guard).
readonly BOX_APT_PACKAGES=(qemu-system-x86 qemu-utils debootstrap genisoimage e2fsprogs nftables)
# openssh-server: the agent's integration test starts its own sshd (its own
# config and port on 127.0.0.1) on the authorized_keys the agent writes.
readonly APT_PACKAGES=(cloud-init wireguard-tools shellcheck pyflakes3 systemd iproute2 iputils-ping openssl curl util-linux openssh-server "${BOX_APT_PACKAGES[@]}")

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools_dir="${MESHSTACK_TOOLS_DIR:-$HOME/.cache/meshstack/tools}"
mkdir -p "$tools_dir"

log() { printf '[setup] %s\n' "$*" >&2; }

install_apt_packages() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "Debian packages present"
    return
  fi
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# go_build NAME PACKAGE@VERSION [via-module]: builds into $tools_dir/NAME-VERSION
# once. `via-module` builds inside a throwaway module instead of
# `go install pkg@version`, for modules whose version list the proxy refuses
# (go install reads it for deprecation notices; go get of an exact version
# does not).
go_build() {
  local name=$1 spec=$2 mode=${3:-install}
  local version=${spec##*@} package=${spec%@*}
  local target="$tools_dir/$name-$version"
  if [ ! -x "$target" ]; then
    log "building $spec (first run only)"
    local work
    work=$(mktemp -d)
    if [ "$mode" = via-module ]; then
      (cd "$work" && go mod init meshstack-tool >/dev/null 2>&1 && go get "$spec" && go build -o "$target" "$package")
    else
      GOBIN="$work" go install "$spec"
      # One binary lands in $work; its name drops a /vN major-version suffix.
      mv "$work"/* "$target"
    fi
    rm -rf "$work"
  fi
}

# go_tool NAME PACKAGE@VERSION [via-module]: go_build, then links
# $tools_dir/bin/NAME to the build, so changing a pin rebuilds and nothing
# stale runs.
go_tool() {
  local name=$1 spec=$2
  go_build "$@"
  mkdir -p "$tools_dir/bin"
  ln -sf "$tools_dir/$name-${spec##*@}" "$tools_dir/bin/$name"
}

install_npm_packages() {
  cd "$repo_root"
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "installing npm packages"
    npm ci --no-audit --no-fund --loglevel=error
  fi
  # The policy pack is its own package (pulumi runs it from policy/); the
  # tests and the offline plan run its rules, so its packages are installed too.
  if [ ! -d policy/node_modules ] || [ policy/package-lock.json -nt policy/node_modules/.package-lock.json ]; then
    log "installing the policy pack's npm packages"
    npm ci --prefix policy --no-audit --no-fund --loglevel=error
  fi
}

install_npm_packages
[ "$mode" = plan ] && exit 0

install_apt_packages
go_tool nats-server "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION"
go_build nats-server "github.com/nats-io/nats-server/v2@$NATS_SERVER_PREVIOUS_VERSION"
go_tool nats "github.com/nats-io/natscli/nats@$NATSCLI_VERSION" via-module
go_tool actionlint "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
go_tool minio "github.com/minio/minio@$MINIO_VERSION"
go_tool mc "github.com/minio/mc@$MC_VERSION" via-module
go_tool wireguard-go "golang.zx2c4.com/wireguard@$WIREGUARD_GO_VERSION"

# nats_release_tarball VERSION: a nats-server build in its release layout
# (nats-server-VERSION-linux-amd64/nats-server in a .tar.gz), for the box's
# mirror and the agent's upgrade tests: nodes download and checksum-verify
# it as from a private mirror. Reproducible bytes (fixed mtime and owner),
# so its sha256 is stable.
nats_release_tarball() {
  local version=$1
  local dir="$tools_dir/mirror/nats-server/$version"
  local name="nats-server-$version-linux-amd64"
  [ -s "$dir/$name.tar.gz.sha256" ] && return
  log "packing $name.tar.gz for the box mirror"
  local work
  work=$(mktemp -d)
  mkdir -p "$work/$name" "$dir"
  cp "$tools_dir/nats-server-$version" "$work/$name/nats-server"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -cf - "$name" | gzip -n >"$dir/$name.tar.gz"
  (cd "$dir" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
  rm -rf "$work"
}
nats_release_tarball "$NATS_SERVER_VERSION"
nats_release_tarball "$NATS_SERVER_PREVIOUS_VERSION"

log "tools in $tools_dir/bin"
