//! libFuzzer entry for `meshray_fuzz::cluster_names`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshray_fuzz::cluster_names(data));
