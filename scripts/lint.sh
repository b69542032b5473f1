#!/usr/bin/env bash
# Lints every shell script in the repo (shellcheck), every Python file
# (pyflakes3) and the workflows (actionlint).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A linter that is not installed fails the lint: skipping it would pass
# files nothing has read.
require() {
  command -v "$1" >/dev/null || { echo "lint: $1 is not installed; run: bash scripts/setup.sh" >&2; exit 1; }
}

mapfile -t scripts < <(git ls-files --cached --others --exclude-standard -- '*.sh' '.ci/run')
require shellcheck
shellcheck -x "${scripts[@]}"

# pyflakes only, no style checker: outside its constants block, every byte of
# cloudinit/agent/agent_render.py is in every node's user-data, so restyling
# it would replace every instance.
mapfile -t python < <(git ls-files --cached --others --exclude-standard -- '*.py')
require pyflakes3
pyflakes3 "${python[@]}"

if [ -d .github/workflows ]; then
  require actionlint
  actionlint
fi
