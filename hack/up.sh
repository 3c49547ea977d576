#!/usr/bin/env bash
# Quick start: brings up a local sandpit on this machine (as root) — control
# plane, a local registry, the controller and one agent — applies the example
# sandbox and waits until it is Ready. Installs what it needs on first use.
#   hack/up.sh          bring everything up (idempotent)
#   hack/up.sh down     delete the sandboxes and stop everything it started
set -euo pipefail
cd "$(dirname "$0")/.."
state="${SANDPIT_DEV_DIR:-/var/lib/sandpit-dev}"
port="${SANDPIT_DEV_PORT:-6443}"
node="${SANDPIT_DEV_NODE:-$(hostname | tr 'A-Z_' 'a-z-')}"
mkdir -p "$state"

stop_pid() { # name: stops a process started below, by the PID it recorded
  local f="$state/$1.pid"
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}

alive() { # name: whether the process started below under that name still runs
  [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null
}

if [ "${1:-up}" = down ]; then
  bin="$(bash hack/tools.sh 2>/dev/null || true)"
  export PATH="$bin:$PATH" KUBECONFIG="$state/control-plane/admin.kubeconfig"
  if [ -f "$state/control-plane/ready" ]; then
    if alive agent && alive controller; then
      # Deleting through the API lets the controller and agent tear every sandbox down.
      kubectl delete sbx --all --all-namespaces --wait --timeout=120s || true
    else
      echo "the agent or the controller is not running: deleting the sandboxes without waiting for them" >&2
      kubectl delete sbx --all --all-namespaces --wait=false || true
    fi
    # Left over (no agent to confirm, or it did not in time): their finalizer would keep them
    # terminating for good, and a later up would see them vanish under its apply.
    left=$(kubectl get sbx --all-namespaces -o jsonpath='{range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{"\n"}{end}' 2>/dev/null || true)
    if [ -n "$left" ]; then
      echo "removing the finalizer of sandboxes no agent cleaned up (the next up's controller and agent remove what they left on this node):" >&2
      while read -r ns name; do
        [ -n "$name" ] || continue
        echo "  $ns/$name" >&2
        kubectl -n "$ns" patch sbx "$name" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null || true
      done <<<"$left"
    fi
  fi
  stop_pid agent
  stop_pid controller
  rm -f "$state/user.kubeconfig" "$state/bin/kubectl-sandpit"
  [ -f dist/hack/local-cluster.js ] && node dist/hack/local-cluster.js remove-node-network >/dev/null 2>&1 || true
  # The agent's (now empty) parent cgroups; rmdir refuses anything still in use.
  for d in /sys/fs/cgroup/*/sandpit-dev /sys/fs/cgroup/sandpit-dev; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done
  bash hack/registry.sh "$state" down
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

bash hack/registry.sh "$state"

if [ ! -f "$state/control-plane/ready" ]; then
  echo "starting etcd and kube-apiserver on 127.0.0.1:$port"
  nohup node dist/hack/local-cluster.js serve --dir "$state/control-plane" --port "$port" >"$state/control-plane.log" 2>&1 &
  for _ in $(seq 1 240); do [ -f "$state/control-plane/ready" ] && break; sleep 0.5; done
  [ -f "$state/control-plane/ready" ] || { echo "control plane did not start; see $state/control-plane.log" >&2; exit 1; }
fi
export KUBECONFIG="$state/control-plane/admin.kubeconfig"

kubectl apply --server-side -f crds/sandboxes.yaml -f crds/sandboxnodes.yaml >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/sandboxes.sandpit.dev crd/sandboxnodes.sandpit.dev >/dev/null
kubectl create namespace sandpit-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -f controllers/manifests/ >/dev/null

if ! alive controller; then
  echo "starting the controller"
  nohup node dist/controllers/main.js --kubeconfig "$KUBECONFIG" --leader-elect false \
    --health-addr 127.0.0.1:10262 --streams-addr 127.0.0.1:18443 >"$state/controller.log" 2>&1 &
  echo $! >"$state/controller.pid"
fi

if ! alive agent; then
  # The agent authenticates like a DaemonSet pod: a ServiceAccount token bound to
  # a Pod on its Node, which is what the node-restriction admission policy checks.
  kubectl -n sandpit-system create serviceaccount sandpit-agent --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $node
---
apiVersion: v1
kind: Pod
metadata:
  name: sandpit-agent-$node
  namespace: sandpit-system
spec:
  nodeName: $node
  serviceAccountName: sandpit-agent
  containers:
    - name: agent
      image: sandpit-agent:local
YAML
  uid=$(kubectl -n sandpit-system get pod "sandpit-agent-$node" -o jsonpath='{.metadata.uid}')
  token=$(kubectl -n sandpit-system create token sandpit-agent --duration 720h \
    --bound-object-kind Pod --bound-object-name "sandpit-agent-$node" --bound-object-uid "$uid")
  akc="$state/agent.kubeconfig"
  kubectl config --kubeconfig "$akc" set-cluster sandpit --server "https://127.0.0.1:$port" \
    --certificate-authority "$state/control-plane/pki/ca.crt" --embed-certs >/dev/null
  kubectl config --kubeconfig "$akc" set-credentials sandpit-agent --token "$token" >/dev/null
  kubectl config --kubeconfig "$akc" set-context sandpit --cluster sandpit --user sandpit-agent --namespace sandpit-system >/dev/null
  kubectl config --kubeconfig "$akc" use-context sandpit >/dev/null
  echo "starting the agent for node $node"
  SANDPIT_STATE_DIR="$state/agent" SANDPIT_CGROUP_PARENT=sandpit-dev SANDPIT_INSECURE_REGISTRIES="localhost:5000" \
    nohup node dist/node-agent/main.js --kubeconfig "$akc" --node-name "$node" \
      --advertise-address 127.0.0.1 --listen 127.0.0.1:10260 --health-addr 127.0.0.1:10261 \
      >"$state/agent.log" 2>&1 &
  echo $! >"$state/agent.pid"
fi

for _ in $(seq 1 120); do kubectl get "sandboxnode/$node" >/dev/null 2>&1 && break; sleep 1; done
kubectl wait --for=condition=Ready --timeout=120s "sandboxnode/$node" >/dev/null \
  || { echo "the agent did not register; see $state/agent.log" >&2; exit 1; }
# A "hello" of an earlier run still being deleted would vanish under the apply (NotFound): let it go first.
if [ -n "$(kubectl get sbx hello -o jsonpath='{.metadata.deletionTimestamp}' 2>/dev/null || true)" ]; then
  echo "waiting for the earlier sandbox hello to finish deleting"
  kubectl wait --for=delete --timeout=120s sbx/hello >/dev/null \
    || { echo "sandbox hello is still being deleted; see $state/controller.log and $state/agent.log" >&2; exit 1; }
fi
kubectl apply -f examples/minimal.yaml
kubectl wait --for=condition=Ready --timeout=180s sbx/hello
kubectl get sbx -o wide

# kubectl sandpit: the controller checks a bearer token (TokenReview), and the
# admin kubeconfig holds a client certificate, so the plugin gets a token user
# of its own (cluster-admin: this is a local development cluster) and reaches
# the controller's streams port directly (no Service proxy without a kubelet).
mkdir -p "$state/bin"
chmod +x dist/cli/main.js
ln -sfn "$PWD/dist/cli/main.js" "$state/bin/kubectl-sandpit"
kubectl -n default create serviceaccount sandpit-dev-user --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl create clusterrolebinding sandpit-dev-user --clusterrole cluster-admin \
  --serviceaccount default:sandpit-dev-user --dry-run=client -o yaml | kubectl apply -f - >/dev/null
ukc="$state/user.kubeconfig"
kubectl config --kubeconfig "$ukc" set-cluster sandpit --server "https://127.0.0.1:$port" \
  --certificate-authority "$state/control-plane/pki/ca.crt" --embed-certs >/dev/null
kubectl config --kubeconfig "$ukc" set-credentials sandpit-dev-user \
  --token "$(kubectl -n default create token sandpit-dev-user --duration 24h)" >/dev/null
kubectl config --kubeconfig "$ukc" set-context sandpit --cluster sandpit --user sandpit-dev-user --namespace default >/dev/null
kubectl config --kubeconfig "$ukc" use-context sandpit >/dev/null

cat <<EOF

sandpit is up: the sandbox "hello" runs on node $node. Use it with:
  export KUBECONFIG=$KUBECONFIG PATH=$bin:\$PATH
  kubectl get sbx,sbxn
  kubectl apply -f examples/two-containers.yaml
  PATH=$state/bin:\$PATH kubectl sandpit --kubeconfig $ukc --direct https://127.0.0.1:18443 exec hello -- hostname
Logs: $state/{controller,agent,control-plane}.log
Stop it with: bash hack/up.sh down
EOF
