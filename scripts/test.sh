#!/usr/bin/env bash
# The project's test command (README, .ci/run): types, lint, the core's browser bundle, the
# whole suite on this Node, then the unit tests (everything that needs no root) on the current
# LTS, Node 26 (npm package node@26, pinned below, cached outside the repo).
#   WIREWEAVE_SKIP_LTS=1   skip the Node 26 pass (e.g. offline)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "typecheck (tsc $(npx tsc --version | cut -d' ' -f2))"
npx tsc --noEmit -p .
step "lint"
npx eslint .
step "layers: imports go down core < crypto < device < netstack < mesh < cli, no cycles"
node --import tsx scripts/check-imports.ts
step "reference docs (typedoc: every export documented, no warnings)"
npx typedoc --out "$(mktemp -d)"
step "core bundles for a browser (no node:* imports)"
npx esbuild src/core/index.ts src/crypto/portable.ts --bundle --platform=browser --format=esm --outdir="$(mktemp -d)" --log-level=warning

mapfile -t all < <(find test -name '*.test.ts' | sort)
mapfile -t unit < <(printf '%s\n' "${all[@]}" | grep -v '\.interop\.test\.ts$')

step "test suite on node $(node --version)"
# A hung test fails after 5 minutes instead of eating the CI budget.
node --import tsx --test --test-timeout=300000 "${all[@]}"

if [[ ${WIREWEAVE_SKIP_LTS:-} != 1 ]]; then
  lts_version=26.10.0
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/wireweave/node-$lts_version
  lts=$cache/node_modules/node/bin/node
  if [[ ! -x $lts ]]; then
    step "installing Node $lts_version (npm package node@$lts_version) into $cache"
    mkdir -p "$cache"
    (cd "$cache" && npm install --no-save --no-package-lock --no-audit --no-fund "node@$lts_version" >/dev/null)
  fi
  step "unit tests on node $("$lts" --version)"
  "$lts" --import tsx --test --test-timeout=300000 "${unit[@]}"
fi
