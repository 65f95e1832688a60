//! proxy-certs' integration tests in one binary: key material written by the
//! tests with rcgen, loaded, selected, reloaded and used in real handshakes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod load;
// Against a real redis-server; the feature is on in `cargo test --workspace`
// (the binary enables it).
#[cfg(feature = "redis")]
mod redis;
mod reload;
mod settings;
mod sni;
mod storage;
mod tickets;
