#!/usr/bin/env bash
# Builds the relay's image: a static x86_64 musl binary (release profile) on
# scratch, as an OCI archive, then checks it without a container runtime: the
# binary is static, runs as the image's non-root user in a chroot of the image's
# root filesystem (nothing from the host), and `--help` lists its settings.
#
#   deploy/images/relay-image.sh OUT.oci.tar TAG
#
# Needs: rustup target x86_64-unknown-linux-musl, musl-tools (aws-lc-rs builds
# its C with musl-gcc), buildah, skopeo, ca-certificates (`make relay-image`
# installs them). A cold release build takes minutes.
set -euo pipefail
out=$1 tag=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=deploy/images/buildah.sh
. "$here/buildah.sh"
target=x86_64-unknown-linux-musl

(cd "$root" && CC_x86_64_unknown_linux_musl=musl-gcc \
  cargo build --release --target "$target" -p meshray-relay --bin meshray-relay)
bin=$root/target/$target/release/meshray-relay

BUILDAH_STATE=$(mktemp -d "${TMPDIR:-/tmp}/meshray-relay-image.XXXXXX")
trap 'b rm --all >/dev/null 2>&1 || true; rm -rf "$BUILDAH_STATE"' EXIT
ctx=$BUILDAH_STATE/context
mkdir -p "$ctx"
strip -o "$ctx/meshray-relay" "$bin"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"
# Fixed modes and times, so the layers do not depend on the build tree.
chmod 0555 "$ctx/meshray-relay"
chmod 0444 "$ctx/ca-certificates.crt"

b bud --quiet --timestamp 0 --identity-label=false --omit-history --format oci \
  -f "$here/relay.Containerfile" -t "$tag" "$ctx" >/dev/null
mkdir -p "$(dirname "$out")"
rm -f "$out"
b push --quiet --disable-compression=false "$tag" "oci-archive:$out:$tag"
digest=$(archive_digest "$out")

# --- check: unpack the image's root filesystem and run the binary inside it ---
rootfs=$BUILDAH_STATE/rootfs
mkdir -p "$rootfs" "$BUILDAH_STATE/layout"
tar -xf "$out" -C "$BUILDAH_STATE/layout"
manifest=$(skopeo inspect --raw "oci-archive:$out")
config=$(skopeo inspect --config --raw "oci-archive:$out")
for layer in $(jq -r '.layers[].digest | sub("sha256:"; "")' <<<"$manifest"); do
  tar -xzf "$BUILDAH_STATE/layout/blobs/sha256/$layer" -C "$rootfs"
done
user=$(jq -r '.config.User' <<<"$config")
entrypoint=$(jq -r '.config.Entrypoint | join(" ")' <<<"$config")
fail() { echo "relay image check: $*" >&2; exit 1; }
[[ $user == 65532:65532 ]] || fail "image user is '$user', not 65532:65532"
[[ $entrypoint == /usr/local/bin/meshray-relay ]] || fail "entrypoint is '$entrypoint'"
[[ -s $rootfs/etc/ssl/certs/ca-certificates.crt ]] || fail "no CA bundle in the image"
if readelf -l "$rootfs/usr/local/bin/meshray-relay" | grep -q 'Requesting program interpreter'; then
  fail "the binary is dynamically linked"
fi
help=$(chroot --userspec=65532:65532 "$rootfs" /usr/local/bin/meshray-relay --help) \
  || fail "meshray-relay --help failed inside the image"
for flag in --listen --sink --epoch-cache --epoch-ttl --daemon-listen; do
  grep -q -- "$flag" <<<"$help" || fail "--help does not list $flag"
done
size=$(stat -c %s "$out")
binsize=$(stat -c %s "$rootfs/usr/local/bin/meshray-relay")
echo "relay image: $out ($tag)"
echo "  digest   sha256:$digest"
echo "  archive  $size bytes; binary $binsize bytes (static, stripped); user $user"
echo "  check    static ELF, runs --help as 65532 in a chroot of the image: ok"
