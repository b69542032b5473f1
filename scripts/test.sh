#!/usr/bin/env bash
# The whole suite: type-check (the program and the policy pack), lint the shell and workflows, then every mocha
# test (unit tests under mocks and integration tests against real servers).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${MESHSTACK_TOOLS_DIR:-$HOME/.cache/meshstack/tools}/bin:$PATH"
npx tsc --noEmit -p .
npx tsc --noEmit -p policy
bash scripts/lint.sh
if [ "$#" -eq 0 ]; then
  set -- 'tests/**/*.test.ts'
fi
npx mocha "$@"
