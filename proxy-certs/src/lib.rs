//! TLS key material for Portcullis: certificate chains and private keys
//! read from PEM files with errors that name the file and the reason; the
//! [`CertificateSource`] trait a TLS listener takes its certificates from,
//! with a rustls resolver choosing among files by SNI ([`SniResolver`],
//! replaced atomically) as one source, and the ACME TLS-ALPN-01 handshake
//! every source can answer; state kept across restarts ([`Storage`]:
//! files, or a store a fleet shares); the server settings built on them
//! (versions, suites, groups); client-certificate policies ([`ClientAuth`]:
//! CA bundles and revocation lists) and session stores scoped by policy, so
//! that a session never resumes under a policy it was not made under; files
//! re-read while serving ([`watch`]); and towards upstreams, the client
//! settings: trust anchors (the system's or given CA certificates),
//! certificate checks with their switches, and a client certificate for
//! mutual TLS.
//!
//! This crate knows rustls but nothing of HTTP; the engine (`proxy-lib`)
//! uses it only through its public types. It installs no crypto provider:
//! callers pass the one they chose (the `portcullis` binary installs
//! aws-lc-rs).

mod challenge;
mod client_auth;
// For layer-4 routing by SNI, which has no caller yet; the fuzz target reads
// it through `fuzzing`.
#[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
mod client_hello;
mod crl;
mod error;
mod files;
mod identity;
mod load;
mod resolver;
mod sessions;
mod source;
mod storage;
pub mod tickets;
mod tls;
mod upstream;
mod verified;
pub mod watch;

/// Entry points for the fuzz targets (`fuzz/`); not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::client_hello::{server_name, server_name_in_records};
}

pub use challenge::{ACME_TLS_ALPN, challenge_config, is_tls_alpn_challenge};
pub use client_auth::ClientAuth;
pub use client_hello::{Hello, server_name_in_records};
pub use error::{Error, ErrorKind, Result};
pub use files::{CertFiles, FileSource};
pub use identity::{client_identity, subject_and_serial};
pub use load::{EXPIRY_WARNING, LoadedCert, MAX_PEM_FILE, load, read_chain, read_key};
pub use resolver::{CertMap, SniResolver, normalized_name};
pub use sessions::{SessionScope, scoped};
pub use source::{CertificateSource, Expiry, SourceMap};
#[cfg(feature = "redis")]
pub use storage::RedisStorage;
pub use storage::{FileStorage, Lock, MemoryStorage, Storage, StorageFuture, check_key};
pub use tls::{PREFERRED_GROUPS, hardened, optional_any_of, server_config};
pub use upstream::{
    ServerCheck, UpstreamVerifier, group_named, read_ca_certificates, system_roots, upstream_config,
};
pub use verified::chain_valid_until;
pub use watch::{DEFAULT_POLL_INTERVAL, Reload, WatchHandle};

/// Whole seconds since the Unix epoch (0 before it), as lock expiries and
/// ticket keys record time.
pub(crate) fn unix_seconds(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
