#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relay_fuzz::queue_open(data));
