#!/usr/bin/env bash
# Runs one test tier, or all of them. Usage: hack/test.sh [unit|node|cluster|e2e|all]
#   unit     pure logic, tests beside the code (*.test.ts under lib/ protocol/ crds/ controllers/ node-agent/ bench/)
#   node     root on the real kernel (test/node/)
#   cluster  a real etcd + kube-apiserver started by the tests (test/cluster/)
#   e2e      whole nodes: a cgroup v2 VM; a 3-node cluster on a private Docker engine (test/e2e/;
#            needs Debian's docker.io, see .ci/packages/e2e.txt; SANDPIT_E2E_CHURN sizes its churn)
#   all      build, type-check and lint gate, CRD freshness, then every tier, each in
#            its own mocha process (a crash in one tier cannot hide another's results)
# Extra arguments after the tier go to mocha (e.g. --grep).
set -euo pipefail
cd "$(dirname "$0")/.."
tier="${1:-all}"
shift || true
export SANDPIT_TEST=1

npm run --silent build
if [ "$tier" = all ]; then
  npm run --silent lint
  node dist/crds/generate.js --check
fi

tier_dirs() {
  case "$1" in
    unit) echo dist/lib dist/protocol dist/crds dist/controllers dist/node-agent dist/cli dist/bench ;;
    node) echo dist/test/node ;;
    cluster) echo dist/test/cluster ;;
    e2e) echo dist/test/e2e ;;
    *) echo "unknown tier: $1 (unit|node|cluster|e2e|all)" >&2; exit 2 ;;
  esac
}

run_tier() {
  local name="$1"; shift
  local files=()
  for d in $(tier_dirs "$name"); do
    [ -d "$d" ] || continue
    while IFS= read -r f; do files+=("$f"); done < <(find "$d" -name '*.test.js' | sort)
  done
  if [ "${#files[@]}" -eq 0 ]; then
    echo "no test files for tier $name" >&2
    return 1
  fi
  echo "=== tier $name: ${#files[@]} files"
  npx mocha --reporter ./test/reporter.cjs --require dist/test/hooks.js "$@" "${files[@]}"
}

if [ "$tier" != all ]; then
  run_tier "$tier" "$@"
  exit $?
fi

passed=0 failed=0 skipped=0 status=0
# Mocha prints a tier's failures in the middle of a long log; CI may show only the tail,
# so each tier's "N failing" section is kept and printed again after the totals.
failures=$(mktemp)
for t in unit node cluster e2e; do
  log=$(mktemp)
  start=$(date +%s)
  set +e
  run_tier "$t" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  sed -i 's/\x1b\[[0-9;]*m//g' "$log"   # colours off, so the patterns below match
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -1 || true)
  if grep -qE '^ +[0-9]+ failing$' "$log"; then
    { echo "--- tier $t"; sed -n '/^ \+[0-9]\+ failing$/,$p' "$log" | head -200; } >>"$failures"
  elif [ -z "$line" ]; then
    { echo "--- tier $t (no result line; its last lines)"; tail -40 "$log"; } >>"$failures"
  fi
  rm -f "$log"
  if [ -z "$line" ]; then
    echo "=== tier $t ended without a result line (exit $rc)"
    failed=$((failed + 1)); status=1
    continue
  fi
  read -r p _ f _ s _ <<<"$line"
  passed=$((passed + p)); failed=$((failed + ${f%,})); skipped=$((skipped + s))
  echo "=== tier $t: $line in $(( $(date +%s) - start ))s"
  [ "$rc" -eq 0 ] || status=1
done
echo
if [ -s "$failures" ]; then
  echo "=== failures, repeated from the tiers above"
  cat "$failures"
  echo
fi
rm -f "$failures"
echo "all tiers: $passed passed, $failed failed, $skipped skipped"
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
