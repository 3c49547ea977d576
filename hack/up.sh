#!/usr/bin/env bash
# Quick start: brings up a local sandpit on this machine (as root) and runs the
# example sandbox. Installs what it needs on first use.
#   hack/up.sh          bring everything up (idempotent)
#   hack/up.sh down     stop everything it started
set -euo pipefail
cd "$(dirname "$0")/.."
state="${SANDPIT_DEV_DIR:-/var/lib/sandpit-dev}"
port="${SANDPIT_DEV_PORT:-6443}"
mkdir -p "$state"

if [ "${1:-up}" = down ]; then
  [ -f dist/hack/local-cluster.js ] && node dist/hack/local-cluster.js down --dir "$state/control-plane"
  exit 0
fi

if [ "${SANDPIT_SKIP_INSTALL:-}" != 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  pkgs=$(grep -hv '^\s*#' .ci/packages/*.txt | tr -s ' \n' '\n' | sort -u | tr '\n' ' ')
  # shellcheck disable=SC2086
  dpkg -s $pkgs >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs >/dev/null; }
  [ -d node_modules ] || npm ci --no-audit --no-fund
fi
npm run --silent build
bin=$(bash hack/tools.sh)
export PATH="$bin:$PATH"

if [ ! -f "$state/control-plane/ready" ]; then
  echo "starting etcd and kube-apiserver on 127.0.0.1:$port"
  nohup node dist/hack/local-cluster.js serve --dir "$state/control-plane" --port "$port" >"$state/control-plane.log" 2>&1 &
  for _ in $(seq 1 240); do [ -f "$state/control-plane/ready" ] && break; sleep 0.5; done
  [ -f "$state/control-plane/ready" ] || { echo "control plane did not start; see $state/control-plane.log" >&2; exit 1; }
fi
export KUBECONFIG="$state/control-plane/admin.kubeconfig"

kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/sandboxes.sandpit.dev crd/sandboxnodes.sandpit.dev >/dev/null
kubectl apply -f examples/minimal.yaml
kubectl get sbx -o wide
cat <<EOF

sandpit is up. Use it with:
  export KUBECONFIG=$KUBECONFIG PATH=$bin:\$PATH
  kubectl get sbx
Stop it with: bash hack/up.sh down
EOF
