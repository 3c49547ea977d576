#!/usr/bin/env bash
# Runs the runtime's cgroup and runtime node-tier tests inside a pure cgroup v2 VM
# (Debian kernel, cgroup_no_v1=all, cgroup2 on /sys/fs/cgroup; see test/vm/).
#   bash hack/vm-cgroupv2.sh                 all dist/test/node/{runtime,cgroup}*.test.js
#   bash hack/vm-cgroupv2.sh FILE...         only these compiled test files
#   VM_MOCHA_ARGS='--grep foo' bash hack/vm-cgroupv2.sh
# Exit code: mocha's, from inside the guest (124 if the VM itself failed).
# mocha runs without --require dist/test/hooks.js: that hook only stops the cluster
# tier's control plane, and importing it costs minutes under emulation (TCG).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_BUILD:-}" = 1 ] || npm run --silent build
if [ "$#" -gt 0 ]; then
  files=("$@")
else
  files=()
  while IFS= read -r f; do files+=("$f"); done < <(ls dist/test/node/runtime*.test.js dist/test/node/cgroup*.test.js 2>/dev/null | sort)
fi
if [ "${#files[@]}" -eq 0 ]; then
  echo "vm-cgroupv2: no runtime/cgroup node-tier tests found under dist/test/node" >&2
  exit 1
fi
echo "=== cgroup v2 VM: ${#files[@]} files: ${files[*]}"
start=$(date +%s)
set +e
# shellcheck disable=SC2086
node dist/test/vm/cli.js --timeout "${SANDPIT_VM_TIMEOUT:-1800}" -e SANDPIT_TEST=1 -- \
  node node_modules/mocha/bin/mocha.js --reporter ./test/reporter.cjs \
  ${VM_MOCHA_ARGS:-} "${files[@]}"
rc=$?
set -e
echo "=== cgroup v2 VM: exit $rc in $(( $(date +%s) - start ))s"
exit "$rc"
