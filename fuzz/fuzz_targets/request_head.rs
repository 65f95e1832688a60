//! Bytes from a hostile peer into proxy-lib's request head parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_lib::fuzzing::request_head(data));
