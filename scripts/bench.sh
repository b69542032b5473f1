#!/usr/bin/env bash
# Runs every benchmark under bench/; each prints its own figures and baseline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${MESHSTACK_TOOLS_DIR:-$HOME/.cache/meshstack/tools}/bin:$PATH"
for bench in bench/*.ts; do
  printf '\n== %s\n' "$bench"
  npx ts-node --transpile-only "$bench"
done
