//! Bytes from a hostile client into proxy-certs' ClientHello reader.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = proxy_certs::fuzzing::server_name(data);
    let _ = proxy_certs::fuzzing::server_name_in_records(data);
});
