//! Bytes from a hostile peer into proxy-lib's proxy protocol parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_lib::fuzzing::proxy_protocol(data));
