//! Reading a certificate chain and its private key from PEM files.
//!
//! Keys may be PKCS#8, PKCS#1 (RSA) or SEC1 (EC) — all three, where some
//! proxies take only PKCS#8. Every way a file can be unusable is an error
//! naming the file and the reason: unreadable, empty, DER given as PEM, no
//! certificate or key in it, an encrypted key, a key that is not the
//! certificate's, a certificate expired or not yet valid. A certificate
//! that expires within [`EXPIRY_WARNING`] loads, with a warning in the log.

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use tracing::warn;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::error::{Error, ErrorKind, Result};
use crate::source::Expiry;

/// How long before its end a certificate is reported as expiring.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// A certificate chain with its key, checked and ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    /// The chain and signing key, for rustls.
    pub certified: Arc<CertifiedKey>,
    /// The DNS names and IP addresses the leaf certificate is for.
    pub names: Vec<String>,
    /// When the leaf certificate's validity ends.
    pub not_after: SystemTime,
}

/// Loads the chain in `cert_path` and the key in `key_path`, checking that
/// they belong together and that the leaf is valid at `now`.
pub fn load(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<LoadedCert> {
    let chain = read_chain(cert_path)?;
    let key = read_key(key_path)?;
    let (names, not_before, not_after) = leaf_facts(cert_path, &chain[0])?;
    if now < not_before {
        return Err(Error::new(
            ErrorKind::NotYetValid,
            cert_path,
            format!(
                "the certificate is not valid before {}",
                rfc3339(not_before)
            ),
        ));
    }
    if now > not_after {
        return Err(Error::new(
            ErrorKind::Expired,
            cert_path,
            format!("the certificate expired at {}", rfc3339(not_after)),
        ));
    }
    if let Ok(left) = not_after.duration_since(now)
        && left < EXPIRY_WARNING
    {
        warn!(
            cert = %cert_path.display(),
            days_left = left.as_secs() / 86_400,
            "certificate expires soon"
        );
    }
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => Error::new(
            ErrorKind::KeyMismatch,
            key_path,
            format!(
                "the key is not the one of the certificate in {}",
                cert_path.display()
            ),
        ),
        other => Error::new(
            ErrorKind::UnsupportedKey,
            key_path,
            format!("the key cannot be used: {other}"),
        ),
    })?;
    Ok(LoadedCert {
        certified: Arc::new(certified),
        names,
        not_after,
    })
}

/// Reads a PEM certificate chain, leaf first.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read_pem_file(path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if chain.is_empty() {
        return Err(Error::new(
            ErrorKind::NoCertificate,
            path,
            "no CERTIFICATE section (is this the key file?)",
        ));
    }
    for (i, cert) in chain.iter().enumerate() {
        if let Err(e) = X509Certificate::from_der(cert) {
            return Err(Error::new(
                ErrorKind::InvalidCertificate,
                path,
                format!("certificate {} of the chain cannot be parsed: {e}", i + 1),
            )
            .with_source(e));
        }
    }
    Ok(chain)
}

/// Reads a PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = read_pem_file(path)?;
    if contains(&bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(Error::new(
            ErrorKind::UnsupportedKey,
            path,
            "the key is encrypted; give it decrypted (PKCS#8, PKCS#1 or SEC1)",
        ));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => Error::new(
            ErrorKind::NoKey,
            path,
            "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY section (is this the certificate file?)",
        ),
        other => pem_error(path, other),
    })
}

/// The most a certificate, key or revocation-list file may hold: 64 MiB,
/// far above the largest public CA's revocation lists, and a bound on what a
/// misnamed path (a log file, `/dev/zero`) can make the process read.
pub const MAX_PEM_FILE: u64 = 64 << 20;

/// The file's bytes, refused when empty, too large or not PEM at all.
pub(crate) fn read_pem_file(path: &Path) -> Result<Vec<u8>> {
    let unreadable = |e: std::io::Error| {
        Error::new(ErrorKind::Unreadable, path, format!("cannot be read: {e}")).with_source(e)
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_PEM_FILE + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(Error::new(
            ErrorKind::TooLarge,
            path,
            format!(
                "more than {} MiB: not a certificate, key or revocation list",
                MAX_PEM_FILE >> 20
            ),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::new(ErrorKind::Empty, path, "the file is empty"));
    }
    if !contains(&bytes, b"-----BEGIN ") {
        let reason = if bytes.first() == Some(&0x30) {
            "this is DER, not PEM; convert it, e.g. `openssl x509 -inform der -in FILE -out FILE.pem`"
        } else {
            "no PEM section (-----BEGIN ...-----) in the file"
        };
        return Err(Error::new(ErrorKind::NotPem, path, reason));
    }
    Ok(bytes)
}

pub(crate) fn pem_error(path: &Path, e: pem::Error) -> Error {
    Error::new(
        ErrorKind::NotPem,
        path,
        format!("the PEM is malformed: {e}"),
    )
    .with_source(e)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The leaf's names and validity window.
fn leaf_facts(
    path: &Path,
    leaf: &CertificateDer<'_>,
) -> Result<(Vec<String>, SystemTime, SystemTime)> {
    let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| {
        Error::new(
            ErrorKind::InvalidCertificate,
            path,
            format!("the certificate cannot be parsed: {e}"),
        )
        .with_source(e)
    })?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push(dns.to_ascii_lowercase()),
                GeneralName::IPAddress(ip) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*ip) {
                        names.push(std::net::Ipv4Addr::from(v4).to_string());
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*ip) {
                        names.push(std::net::Ipv6Addr::from(v6).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let validity = cert.validity();
    Ok((
        names,
        to_system_time(validity.not_before.timestamp()),
        to_system_time(validity.not_after.timestamp()),
    ))
}

/// The first name `key`'s leaf is for and when it expires; `None` when
/// the leaf cannot be parsed.
pub(crate) fn leaf_expiry(key: &CertifiedKey) -> Option<Expiry> {
    let leaf = key.cert.first()?;
    let (names, _, not_after) = leaf_facts(Path::new(""), leaf).ok()?;
    Some(Expiry {
        name: names.into_iter().next().unwrap_or_else(|| "-".to_owned()),
        not_after,
    })
}

pub(crate) fn to_system_time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH,
    }
}

/// `2026-11-23T01:01:01Z`: `t` in UTC, to the second (before 1970: 1970).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let t = i64::try_from(secs)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_in_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_392_000 + 3_661);
        assert_eq!(rfc3339(t), "2026-11-23T01:01:01Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
