#!/usr/bin/env bash
# The quick start's image source: Debian's docker-registry on 127.0.0.1:5000
# (no container registry is reachable from these machines) serving
# localhost:5000/sandpit/busybox:stable, built here from busybox-static with
# umoci and pushed with skopeo — the image the examples use.
#   hack/registry.sh STATE_DIR        start (idempotent) and push the image
#   hack/registry.sh STATE_DIR down   stop it
set -euo pipefail
state="${1:?state dir}"
port="${SANDPIT_REGISTRY_PORT:-5000}"
dir="$state/registry"
mkdir -p "$dir"

if [ "${2:-up}" = down ]; then
  [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
  rm -f "$dir/pid"
  exit 0
fi

if ! { [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; }; then
  cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
  nohup docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.2; done
fi

if ! skopeo inspect --tls-verify=false "docker://localhost:$port/sandpit/busybox:stable" >/dev/null 2>&1; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  bash "$(dirname "$0")/busybox-image.sh" "$work/oci"
  skopeo copy --quiet --dest-tls-verify=false "oci:$work/oci:stable" "docker://localhost:$port/sandpit/busybox:stable"
fi
echo "registry on 127.0.0.1:$port serves localhost:$port/sandpit/busybox:stable"
