//! libFuzzer entry for `meshray_fuzz::filter_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshray_fuzz::filter_request(data));
