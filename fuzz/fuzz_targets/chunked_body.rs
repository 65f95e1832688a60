//! Bytes from a hostile peer into proxy-lib's chunked body parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_lib::fuzzing::chunked_body(data));
