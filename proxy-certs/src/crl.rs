//! Reading certificate revocation lists (RFC 5280 CRLs) from PEM files.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::{self, PemObject};
use x509_parser::prelude::{CertificateRevocationList, FromDer as _};

use crate::error::{Error, ErrorKind, Result};
use crate::load::{pem_error, read_pem_file, to_system_time};

/// The revocation lists of one file, read and parsed.
#[derive(Debug, Clone)]
pub(crate) struct CrlFile {
    pub(crate) path: PathBuf,
    pub(crate) crls: Vec<CertificateRevocationListDer<'static>>,
    /// The earliest `nextUpdate` of the file's lists: after it, the issuer
    /// promised a newer list.
    pub(crate) next_update: Option<SystemTime>,
}

/// Reads every `X509 CRL` section of the PEM file at `path`. A file that
/// cannot be read, holds none, or holds one that cannot be parsed is an
/// error naming the file.
pub(crate) fn read_crls(path: &Path) -> Result<CrlFile> {
    let bytes = read_pem_file(path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| match e {
            pem::Error::NoItemsFound => no_crl(path),
            other => pem_error(path, other),
        })?;
    if crls.is_empty() {
        return Err(no_crl(path));
    }
    let mut next_update: Option<SystemTime> = None;
    for (i, der) in crls.iter().enumerate() {
        let (_, crl) = CertificateRevocationList::from_der(der).map_err(|e| {
            Error::new(
                ErrorKind::InvalidRevocationList,
                path,
                format!("revocation list {} cannot be parsed: {e}", i + 1),
            )
            .with_source(e)
        })?;
        if let Some(next) = crl.next_update() {
            let next = to_system_time(next.timestamp());
            next_update = Some(next_update.map_or(next, |earliest| earliest.min(next)));
        }
    }
    Ok(CrlFile {
        path: path.to_path_buf(),
        crls,
        next_update,
    })
}

fn no_crl(path: &Path) -> Error {
    Error::new(
        ErrorKind::NoRevocationList,
        path,
        "no X509 CRL section (is this a certificate?)",
    )
}
