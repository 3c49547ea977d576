#!/usr/bin/env bash
# Runs benchmarks (all, or those named) and regenerates the README table from
# bench/results/*.json. Benchmarks measure sandpit and its peer in the same run
# and record the ratio; they are never part of the test suite.
#   npm run bench                 every bench/*.ts
#   npm run bench -- NAME...      only bench/NAME.ts
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
if [ "$#" -gt 0 ]; then
  names=("$@")
else
  names=()
  for f in dist/bench/*.js; do
    n=$(basename "$f" .js)
    case "$n" in results-table|*.test|*-lib|lib-*) continue ;; esac
    names+=("$n")
  done
fi
for n in "${names[@]}"; do
  echo "== bench/$n"
  node "dist/bench/$n.js"
done
node dist/bench/results-table.js
