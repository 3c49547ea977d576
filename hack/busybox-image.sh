#!/usr/bin/env bash
# Builds the image the examples use (busybox-static with a link per applet, an
# /etc/passwd and /etc/group, a /www page, PATH=/bin) as tag "stable" of an OCI
# layout, with umoci. hack/registry.sh pushes it for the quick start and
# test/cluster/examples-ready.test.ts for the test of every example.
#   hack/busybox-image.sh LAYOUT_DIR     (LAYOUT_DIR must not exist yet)
set -euo pipefail
layout="${1:?OCI layout dir}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umoci init --layout "$layout"
umoci new --image "$layout:stable"
umoci unpack --image "$layout:stable" "$work/bundle" >/dev/null
root="$work/bundle/rootfs"
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/www" "$root/root"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
echo '<h1>hello from a sandpit sandbox</h1>' >"$root/www/index.html"
chmod 1777 "$root/tmp"
umoci repack --image "$layout:stable" "$work/bundle"
umoci config --image "$layout:stable" --config.cmd /bin/sh --config.env PATH=/bin --config.workingdir /
