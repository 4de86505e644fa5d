# Sourced by the image scripts: buildah with a private store under $BUILDAH_STATE
# (vfs: no kernel overlay or fuse needed; nothing pulled, nothing left behind in
# the machine's own store). Caller sets BUILDAH_STATE and removes it afterwards.
b() {
  buildah --root "$BUILDAH_STATE/root" --runroot "$BUILDAH_STATE/run" --storage-driver vfs "$@"
}

# Reproducible commit: fixed timestamps (image config and every file in the
# layers), no builder-version label, no history, gzip layers (Istio's compat
# variant expects application/vnd.oci.image.layer.v1.tar+gzip).
commit() {
  b commit --quiet --timestamp 0 --identity-label=false --omit-history \
    --disable-compression=false --format oci "$@"
}

# The manifest digest (hex) of an oci-archive: what registries and Istio call
# the image digest.
archive_digest() {
  skopeo inspect --raw "oci-archive:$1" | sha256sum | cut -d' ' -f1
}
