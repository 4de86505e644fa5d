//! libFuzzer entry for `meshray_fuzz::daemon_datagram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshray_fuzz::daemon_datagram(data));
