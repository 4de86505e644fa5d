//! libFuzzer entry for `meshray_fuzz::otlp_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshray_fuzz::otlp_json(data));
