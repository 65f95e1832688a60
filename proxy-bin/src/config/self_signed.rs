//! `self_signed_if_missing = true`: a self-signed pair for an app whose
//! certificate and key files are both absent, made when the configuration
//! is loaded to serve. `--check` writes nothing where the files belong: the
//! pair is made in a scratch directory, so the rest of the configuration
//! is checked with it, and removed. That directory has an unpredictable
//! name and is made exclusively, readable by its owner only: no other user
//! can plant it or a link in its place.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use tempfile::TempDir;

use proxy_certs::CertFiles;

use crate::config::{ConfigError, Mode};

type Result<T> = std::result::Result<T, ConfigError>;

/// `files`, after making a self-signed pair for them if both are absent:
/// in place when serving; for a check, in a scratch directory (the
/// returned files point there).
pub fn if_missing(
    files: CertFiles,
    key: &str,
    mode: Mode,
    warnings: &mut Vec<String>,
) -> Result<CertFiles> {
    match (files.cert.exists(), files.key.exists()) {
        (true, true) => return Ok(files),
        (false, false) => {}
        (cert, _) => {
            let (missing, field) = if cert {
                (&files.key, "tls_cert_key_path")
            } else {
                (&files.cert, "tls_cert_path")
            };
            return Err(ConfigError::at(
                format!("{key}.{field}"),
                format!(
                    "{} is missing while its pair exists; a self-signed pair is only made when both are absent",
                    missing.display()
                ),
            ));
        }
    }
    let refuse = |reason: String| ConfigError::at(format!("{key}.tls_cert_path"), reason);
    let names: Vec<String> = files
        .names
        .iter()
        .filter(|n| !n.is_empty())
        .cloned()
        .collect();
    let names = if names.is_empty() {
        vec!["localhost".to_owned()]
    } else {
        names
    };
    let key_pair =
        rcgen::KeyPair::generate().map_err(|e| refuse(format!("cannot make a key: {e}")))?;
    let cert = rcgen::CertificateParams::new(names.clone())
        .and_then(|params| params.self_signed(&key_pair))
        .map_err(|e| refuse(format!("cannot make a self-signed certificate: {e}")))?;
    let target = match mode {
        Mode::Serve => files.clone(),
        Mode::Check => {
            let dir = scratch_dir()
                .map_err(|e| refuse(format!("cannot make a scratch directory: {e}")))?;
            CertFiles {
                cert: scratch(&dir, key, "crt"),
                key: scratch(&dir, key, "key"),
                ..files.clone()
            }
        }
    };
    for dir in [&target.key, &target.cert]
        .iter()
        .filter_map(|p| p.parent())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| refuse(format!("cannot create {}: {e}", dir.display())))?;
    }
    write_private(&target.key, key_pair.serialize_pem().as_bytes())
        .map_err(|e| refuse(format!("cannot write {}: {e}", target.key.display())))?;
    std::fs::write(&target.cert, cert.pem())
        .map_err(|e| refuse(format!("cannot write {}: {e}", target.cert.display())))?;
    let done = match mode {
        Mode::Serve => "generated",
        Mode::Check => "would generate",
    };
    warnings.push(format!(
        "{key}: {done} a SELF-SIGNED certificate for {} at {} (clients will not trust it; \
         replace both files with a real certificate)",
        names.join(", "),
        files.cert.display()
    ));
    Ok(target)
}

/// The scratch directory of this check, made on first use.
static SCRATCH: Mutex<Option<TempDir>> = Mutex::new(None);

/// Removes what a check wrote in the scratch directory.
pub fn clean_scratch() {
    drop(
        SCRATCH
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(),
    );
}

fn scratch_dir() -> std::io::Result<PathBuf> {
    let mut scratch = SCRATCH.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(dir) = scratch.as_ref() {
        return Ok(dir.path().to_owned());
    }
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::Builder::new()
        .prefix("portcullis-check-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()?;
    let path = dir.path().to_owned();
    *scratch = Some(dir);
    Ok(path)
}

fn scratch(dir: &Path, key: &str, extension: &str) -> PathBuf {
    let name: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    dir.join(format!("{name}.{extension}"))
}

/// Creates `path` readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_scratch_directory_is_private_unpredictable_and_removed() {
        let dir = scratch_dir().unwrap();
        assert_eq!(scratch_dir().unwrap(), dir, "one a check");
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert_ne!(name, format!("portcullis-check-{}", std::process::id()));
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        clean_scratch();
        assert!(!dir.exists());
    }
}
