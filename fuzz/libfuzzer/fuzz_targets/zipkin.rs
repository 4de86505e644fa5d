//! libFuzzer entry for `meshray_fuzz::zipkin`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshray_fuzz::zipkin(data));
