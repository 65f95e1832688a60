//! Bytes from a hostile peer into proxy-lib's response head parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_lib::fuzzing::response_head(data));
