#!/usr/bin/env bash
# Runs one test tier, or all of them. Usage: hack/test.sh [unit|node|cluster|e2e|all]
#   unit     pure logic, tests beside the code (*.test.ts under lib/ crds/ controllers/ node-agent/)
#   node     root on the real kernel (test/node/)
#   cluster  a real etcd + kube-apiserver started by the tests (test/cluster/)
#   e2e      several nodes in containers of a Docker engine the tests start (test/e2e/)
#   all      build, type-check and lint gate, then every tier in one mocha run
set -euo pipefail
cd "$(dirname "$0")/.."
tier="${1:-all}"
export SANDPIT_TEST=1

npm run --silent build
if [ "$tier" = all ]; then
  npm run --silent lint
  node dist/crds/generate.js --check
fi

unit=(dist/lib dist/crds dist/controllers dist/node-agent dist/bench)
case "$tier" in
  unit) specs=("${unit[@]}") ;;
  node) specs=(dist/test/node) ;;
  cluster) specs=(dist/test/cluster) ;;
  e2e) specs=(dist/test/e2e) ;;
  all) specs=("${unit[@]}" dist/test/node dist/test/cluster dist/test/e2e) ;;
  *) echo "unknown tier: $tier (unit|node|cluster|e2e|all)" >&2; exit 2 ;;
esac

files=()
for d in "${specs[@]}"; do
  [ -d "$d" ] || continue
  while IFS= read -r f; do files+=("$f"); done < <(find "$d" -name '*.test.js' | sort)
done
if [ "${#files[@]}" -eq 0 ]; then
  echo "no test files for tier $tier" >&2
  exit 1
fi
exec npx mocha --reporter ./test/reporter.cjs --require dist/test/hooks.js "${files[@]}"
