#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relay_fuzz::queue_log_v1(data));
