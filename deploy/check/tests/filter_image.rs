//! The filter's OCI image (`make wasm-image`) is what Istio can pull and what
//! the manifests pin: Istio's *compat* layout holding exactly the shipped
//! `.wasm`, built reproducibly, with its manifest digest (what Istio compares a
//! WasmPlugin's `sha256` with for `oci://` URLs) in every WasmPlugin recipe.
//!
//! Needs the built filter (MESHRAY_FILTER_WASM), the image archive
//! (MESHRAY_FILTER_IMAGE) and buildah + skopeo: `make test` provides them.

mod support;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use meshray_deploy_check::oci::{self, Image};
use meshray_deploy_check::repo_root;
use support::{find, rendered};

/// The gzip layer media type Istio's compat fetcher accepts for OCI manifests.
const OCI_GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn path_from_env(var: &str, default: &str) -> PathBuf {
    std::env::var(var)
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(default))
}

fn image_archive() -> PathBuf {
    path_from_env(
        "MESHRAY_FILTER_IMAGE",
        "target/images/meshray-filter.oci.tar",
    )
}

#[allow(clippy::panic)] // a test helper: a missing image fails the test with the fix
fn image() -> Image {
    let archive = image_archive();
    oci::read(&archive).unwrap_or_else(|e| panic!("{e} (build it with `make wasm-image`)"))
}

/// The image is Istio's compat layout holding the shipped .wasm byte for byte, built with a fixed timestamp.
#[test]
fn the_image_holds_exactly_the_shipped_filter_in_istio_compat_layout() {
    let image = image();
    assert_eq!(
        image.manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        image.manifest["annotations"]["module.wasm.image/variant"],
        "compat"
    );
    let [layer] = image.layers.as_slice() else {
        panic!(
            "Istio's compat layout has exactly one layer, this image has {}",
            image.layers.len()
        );
    };
    assert_eq!(layer.media_type, OCI_GZIP_LAYER);
    assert_eq!(
        oci::layer_entries(&layer.blob, true).unwrap(),
        ["plugin.wasm"]
    );
    let in_image = oci::layer_file(&layer.blob, true, "plugin.wasm").unwrap();
    let wasm_path = path_from_env("MESHRAY_FILTER_WASM", "target/filter/meshray_filter.wasm");
    let shipped = fs::read(&wasm_path)
        .unwrap_or_else(|e| panic!("{}: {e} (`make wasm`)", wasm_path.display()));
    assert!(
        in_image == shipped,
        "plugin.wasm in the image differs from {}",
        wasm_path.display()
    );
    assert!(in_image.starts_with(b"\0asm"), "not a Wasm module");
    // Fixed timestamps: the build time leaves no trace in the image.
    assert_eq!(image.config["created"], "1970-01-01T00:00:00Z");
}

/// Every recipe's `sha256` is the image's manifest digest (what Istio verifies for oci:// URLs).
#[test]
fn every_wasmplugin_recipe_pins_the_image_digest() {
    let digest = image().manifest_digest;
    for recipe in ["base", "workload", "namespace", "mesh", "waypoint"] {
        let docs = rendered(&format!("istio/wasmplugin/{recipe}"));
        let pinned = &find(&docs, "WasmPlugin", "meshray")["spec"]["sha256"];
        assert_eq!(
            pinned.as_str(),
            Some(digest.as_str()),
            "istio/wasmplugin/{recipe} pins {pinned}, the filter image built from this tree is {digest}: \
             run `make wasm-image` (it re-pins) and commit istio/wasmplugin/base/wasmplugin.yaml"
        );
    }
}

/// A second build from the same .wasm gives the same digest, and the script prints it.
#[test]
fn building_the_image_again_gives_the_same_digest() {
    let out = std::env::temp_dir().join(format!(
        "meshray-filter-rebuild-{}.oci.tar",
        std::process::id()
    ));
    let wasm_path = path_from_env("MESHRAY_FILTER_WASM", "target/filter/meshray_filter.wasm");
    let output = Command::new(repo_root().join("deploy/images/wasm-image.sh"))
        .arg(&wasm_path)
        .arg(&out)
        .arg("meshray-filter:rebuild")
        .output()
        .expect("deploy/images/wasm-image.sh runs");
    let rebuilt = oci::read(&out);
    fs::remove_file(&out).unwrap_or_default();
    assert!(
        output.status.success(),
        "rebuild failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rebuilt = rebuilt.unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert_eq!(
        printed, rebuilt.manifest_digest,
        "the script prints the manifest digest"
    );
    assert_eq!(
        rebuilt.manifest_digest,
        image().manifest_digest,
        "same .wasm, different image digest"
    );
}
