//! Mapping a request path to a file under the root, refusing every way out:
//! `..` (plain or percent-encoded), NUL and backslashes, and symlinks that
//! lead outside the root. Hidden files (a segment starting with `.`) are not
//! served, except under `/.well-known/`.

use std::fs::Metadata;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

use crate::error::{Error, ErrorKind, Result};

#[derive(Debug)]
pub(crate) enum Resolved {
    File(PathBuf, Metadata),
    /// A directory requested without its trailing slash.
    AddSlash,
}

fn not_found() -> Error {
    Error::new(ErrorKind::NotFound)
}

fn forbidden(why: &'static str) -> Error {
    Error::new(ErrorKind::Forbidden).with_context(why)
}

pub(crate) async fn resolve(root: &Path, request_path: &str, index: &str) -> Result<Resolved> {
    let relative = relative_path(request_path)?;
    let canonical = inside(root, &root.join(&relative)).await?;
    let meta = tokio::fs::metadata(&canonical)
        .await
        .map_err(|_| not_found())?;
    if meta.is_dir() {
        if !request_path.ends_with('/') {
            return Ok(Resolved::AddSlash);
        }
        let index = inside(root, &canonical.join(index)).await?;
        let meta = tokio::fs::metadata(&index).await.map_err(|_| not_found())?;
        return if meta.is_file() {
            Ok(Resolved::File(index, meta))
        } else {
            Err(not_found())
        };
    }
    if !meta.is_file() {
        return Err(not_found());
    }
    Ok(Resolved::File(canonical, meta))
}

/// The request path as a relative file path, refusing escapes and hidden
/// files.
fn relative_path(request_path: &str) -> Result<PathBuf> {
    let decoded = percent_decode_str(request_path)
        .decode_utf8()
        .map_err(|_| not_found())?;
    let mut relative = PathBuf::new();
    let mut segments = decoded
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .peekable();
    let mut first = true;
    while let Some(segment) = segments.next() {
        if segment == ".." {
            return Err(forbidden("path escapes the static root"));
        }
        if segment.contains(['\0', '\\']) {
            return Err(forbidden("forbidden character in path"));
        }
        let well_known = first && segment == ".well-known" && segments.peek().is_some();
        if segment.starts_with('.') && !well_known {
            return Err(not_found());
        }
        relative.push(segment);
        first = false;
    }
    Ok(relative)
}

/// The canonical form of `path`, which must stay under `root` once every
/// symlink is followed.
async fn inside(root: &Path, path: &Path) -> Result<PathBuf> {
    let canonical = tokio::fs::canonicalize(path)
        .await
        .map_err(|_| not_found())?;
    if !canonical.starts_with(root) {
        return Err(forbidden("symlink leads outside the static root"));
    }
    Ok(canonical)
}
