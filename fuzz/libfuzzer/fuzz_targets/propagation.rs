//! libFuzzer entry for `meshray_fuzz::propagation`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshray_fuzz::propagation(data));
