//! proxy-certs' integration tests in one binary: key material written by the
//! tests with rcgen, loaded, selected, reloaded and used in real handshakes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod load;
mod reload;
mod settings;
mod sni;
mod storage;
mod tickets;
