//! libFuzzer entry for `meshray_fuzz::plugin_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshray_fuzz::plugin_config(data));
