#!/usr/bin/env bash
# Builds sandpit's one native helper (node-agent/native/sandpit-init.c): the
# sandbox PID 1, the per-container shim, exec and the user namespace maker.
# No libc, static, a few KiB; why it exists is recorded in
# node-agent/runtime/README.md. Output: dist/native/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist/native}
mkdir -p "$out"
src=node-agent/native/sandpit-init.c
bin="$out/sandpit-init"
if [[ -x "$bin" && "$bin" -nt "$src" && "$bin" -nt "$0" ]]; then exit 0; fi
${CC:-gcc} -Os -static -nostdlib -ffreestanding -fno-builtin -fno-stack-protector \
  -fno-asynchronous-unwind-tables -fcf-protection=none -no-pie -Wall -Wextra -Werror \
  -Wl,--build-id=none -s -o "$bin.tmp" "$src"
mv "$bin.tmp" "$bin"
