#!/usr/bin/env bash
# Builds the meshray filter's OCI image in Istio's *compat* layout: one gzip
# layer holding /plugin.wasm, manifest annotation module.wasm.image/variant=compat.
# No daemon, no base image. Reproducible: the same .wasm gives the same digest.
#
#   deploy/images/wasm-image.sh FILTER.wasm OUT.oci.tar [TAG]
#
# Prints the manifest digest (hex), which is what WasmPlugin `sha256` must hold.
set -euo pipefail
wasm=$1 out=$2 tag=${3:-meshray-filter:latest}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/images/buildah.sh
. "$here/buildah.sh"

BUILDAH_STATE=$(mktemp -d "${TMPDIR:-/tmp}/meshray-wasm-image.XXXXXX")
trap 'b rm --all >/dev/null 2>&1 || true; rm -rf "$BUILDAH_STATE"' EXIT

# Copy under the name Istio looks for; mode fixed so the layer does not depend
# on the build tree's umask.
cp "$wasm" "$BUILDAH_STATE/plugin.wasm"
ctr=$(b from scratch)
b copy --quiet --chmod 0444 "$ctr" "$BUILDAH_STATE/plugin.wasm" /plugin.wasm
b config --annotation module.wasm.image/variant=compat \
  --label org.opencontainers.image.title=meshray-filter \
  --label org.opencontainers.image.licenses=Apache-2.0 "$ctr"
mkdir -p "$(dirname "$out")"
rm -f "$out"
commit "$ctr" "oci-archive:$out:$tag" >/dev/null
archive_digest "$out"
