#!/usr/bin/env bash
# The box tier: the dev stack's real program boots real Debian 12 VMs under
# QEMU (npm run box) and tests/box/ asserts what came up. Needs root (the
# underlay namespace, taps, debootstrap) and scripts/setup.sh. Whatever
# happens, nothing is left running: the tests tear the box down, and so
# does this script on its way out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${MESHSTACK_TOOLS_DIR:-$HOME/.cache/meshstack/tools}/bin:$PATH"
trap 'npx ts-node --transpile-only scripts/box.ts down >/dev/null 2>&1 || true' EXIT
# The image first, on its own: a cold build takes minutes and says so.
bash box/image/build.sh >/dev/null
npx mocha --config tests/box/mocharc.json "$@"
