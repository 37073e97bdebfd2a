#![no_main]
use rice_fuzz::targets;
libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::jsonl_readers(data));
