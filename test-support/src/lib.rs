//! Origins and clients for Portcullis's integration tests: real servers on
//! 127.0.0.1:0 that record what reaches them, and clients that speak
//! HTTP/1.1, HTTP/1.0 (raw), h2c or arbitrary bytes, in cleartext or over
//! TLS with certificates made by rcgen.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    missing_debug_implementations
)]

mod client;
mod h3_client;
mod logs;
mod nginx;
mod origin;
mod pebble;
mod pki;
mod redis;
pub mod soak;
mod tls;
mod tls_origin;
mod trafficserver;
mod tunnel;

pub use client::*;
pub use h3_client::*;
pub use logs::*;
pub use nginx::*;
pub use origin::*;
pub use pebble::*;
pub use pki::*;
pub use rcgen;
pub use redis::*;
pub use tls::*;
pub use tls_origin::*;
pub use trafficserver::*;
pub use tunnel::*;
