#!/usr/bin/env bash
# Lints every shell script in the repo (shellcheck) and the workflows (actionlint).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mapfile -t scripts < <(git ls-files --cached --others --exclude-standard -- '*.sh' '.ci/run')
shellcheck -x "${scripts[@]}"
if [ -d .github/workflows ]; then
  actionlint
fi
