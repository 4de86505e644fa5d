//! libFuzzer entry for `meshray_fuzz::segments`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshray_fuzz::segments(data));
