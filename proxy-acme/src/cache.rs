//! rustls-acme's cache over a [`Storage`]: where the account key and each
//! app's certificate are kept, and what a certificate read or written there
//! says about its lifetime.
//!
//! Keys: `<directory>/account-<contacts hash>.key` and
//! `<directory>/<first name>-<names hash>.pem`, `<directory>` being the
//! directory URL's host and path with other characters than letters,
//! digits, `.` and `-` turned into `_`. A certificate file holds its key
//! and chain (PEM), so it is as secret as the account key.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use proxy_certs::Storage;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls_acme::{AccountCache, CertCache};
use sha2::{Digest as _, Sha256};

use crate::source::Managed;

/// The storage key of the account of `contacts` at `directory`.
pub fn account_key(directory: &str, contacts: &[String]) -> String {
    format!(
        "{}/account-{}.key",
        directory_segment(directory),
        short_hash(contacts)
    )
}

/// The storage key of the certificate for `names` (in this order) from
/// `directory`.
pub fn certificate_key(directory: &str, names: &[String]) -> String {
    let first = names.first().map_or("none", String::as_str);
    format!(
        "{}/{}-{}.pem",
        directory_segment(directory),
        segment(first),
        short_hash(names)
    )
}

fn directory_segment(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    segment(rest.trim_end_matches('/'))
}

fn segment(text: &str) -> String {
    let segment: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match segment.strip_prefix('.') {
        Some(rest) => format!("_{rest}"),
        None if segment.is_empty() => "_".to_owned(),
        None => segment,
    }
}

fn short_hash(items: &[String]) -> String {
    let mut hash = Sha256::new();
    for item in items {
        hash.update(item.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The lifetime of the leaf certificate in a PEM bundle (key and chain, as
/// stored): `(not_before, not_after)`.
pub fn certificate_lifetime(pem: &[u8]) -> Option<(SystemTime, SystemTime)> {
    let leaf = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).ok()?;
    let at = |t: x509_parser::time::ASN1Time| {
        let seconds = u64::try_from(t.timestamp()).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
    };
    Some((
        at(parsed.validity().not_before)?,
        at(parsed.validity().not_after)?,
    ))
}

/// One app's view of the storage.
pub(crate) struct StorageCache {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) app: Arc<Managed>,
}

#[async_trait::async_trait]
impl CertCache for StorageCache {
    type EC = io::Error;

    async fn load_cert(&self, domains: &[String], directory: &str) -> io::Result<Option<Vec<u8>>> {
        let key = certificate_key(directory, domains);
        let loaded = self.storage.load(&key).await;
        match &loaded {
            Ok(Some(pem)) => self.app.seen(certificate_lifetime(pem)),
            _ => self.app.cache_checked(),
        }
        loaded
    }

    async fn store_cert(&self, domains: &[String], directory: &str, pem: &[u8]) -> io::Result<()> {
        self.app.seen(certificate_lifetime(pem));
        let key = certificate_key(directory, domains);
        self.storage.store(&key, pem).await
    }
}

#[async_trait::async_trait]
impl AccountCache for StorageCache {
    type EA = io::Error;

    async fn load_account(
        &self,
        contacts: &[String],
        directory: &str,
    ) -> io::Result<Option<Vec<u8>>> {
        self.storage.load(&account_key(directory, contacts)).await
    }

    async fn store_account(
        &self,
        contacts: &[String],
        directory: &str,
        key: &[u8],
    ) -> io::Result<()> {
        self.storage
            .store(&account_key(directory, contacts), key)
            .await
    }
}
