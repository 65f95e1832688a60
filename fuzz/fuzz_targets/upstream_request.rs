//! A request with hostile fields and body, as HTTP/3 hands it over, through
//! proxy-lib's HTTP/1.1 upstream encoder: it must read back as exactly one
//! request, framed as its body is.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_lib::fuzzing::upstream_request(data));
