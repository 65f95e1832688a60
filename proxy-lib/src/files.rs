//! Static files: a route may serve a directory instead of upstreams, with
//! content types, index files, single byte ranges and conditional requests.

mod conditional;
mod range;
mod resolve;

use std::io::SeekFrom;
use std::path::Path;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use tokio::io::AsyncSeekExt;

use conditional::{Precondition, Validators};
use range::Ranged;
use resolve::Resolved;

use crate::body::FileBody;
use crate::config::StaticFiles;
use crate::error::{Error, ErrorKind, Result};
use crate::response::{ResponseBody, text};
use crate::routing::CompiledRoute;

/// Serves the file for `path` (normalised, its first `matched` bytes being
/// the route prefix).
pub(crate) async fn serve(
    files: &StaticFiles,
    route: &CompiledRoute,
    path: &str,
    matched: usize,
    parts: &Parts,
) -> Result<Response<ResponseBody>> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed\n".into(),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    let mut file_path = String::with_capacity(path.len());
    match &route.replace {
        Some(replace) => replace.rewrite_into(path, matched, &mut file_path),
        None => file_path.push_str(path),
    }
    match resolve::resolve(&files.root, &file_path, &files.index).await? {
        Resolved::AddSlash => {
            let mut location = format!("{path}/");
            if let Some(query) = parts.uri.query() {
                location.push('?');
                location.push_str(query);
            }
            let mut response = text(
                StatusCode::MOVED_PERMANENTLY,
                "301 Moved Permanently\n".into(),
            );
            let location = HeaderValue::from_str(&location)
                .map_err(|e| Error::new(ErrorKind::Internal).with_source(e))?;
            response.headers_mut().insert(header::LOCATION, location);
            Ok(response)
        }
        Resolved::File(file, meta) => serve_file(&file, &meta, parts).await,
    }
}

async fn serve_file(
    path: &Path,
    meta: &std::fs::Metadata,
    parts: &Parts,
) -> Result<Response<ResponseBody>> {
    let len = meta.len();
    let validators = Validators::new(len, meta.modified().ok());
    let mut response = Response::new(ResponseBody::empty());
    let headers = response.headers_mut();
    headers.insert(header::ETAG, header_value(&validators.etag)?);
    if let Some(modified) = validators.modified {
        headers.insert(
            header::LAST_MODIFIED,
            header_value(&httpdate::fmt_http_date(modified))?,
        );
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    match validators.evaluate(&parts.headers) {
        Precondition::NotModified => {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return Ok(response);
        }
        Precondition::Failed => return Err(Error::new(ErrorKind::PreconditionFailed)),
        Precondition::Proceed => {}
    }
    let range = match parts
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
        Some(spec) if validators.if_range_holds(&parts.headers) => range::parse(spec, len),
        _ => Ranged::Whole,
    };
    let (start, count) = match range {
        Ranged::Whole => (0, len),
        Ranged::Part(first, last) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let content_range = format!("bytes {first}-{last}/{len}");
            response
                .headers_mut()
                .insert(header::CONTENT_RANGE, header_value(&content_range)?);
            (first, last - first + 1)
        }
        Ranged::Unsatisfiable => {
            let mut refused = text(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "416 Range Not Satisfiable\n".into(),
            );
            refused.headers_mut().insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{len}"))?,
            );
            return Ok(refused);
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type(path));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if parts.method == Method::HEAD {
        return Ok(response);
    }
    let io_error = |e| {
        Error::new(ErrorKind::Io)
            .with_context(path.display().to_string())
            .with_source(e)
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io_error)?;
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await.map_err(io_error)?;
    }
    *response.body_mut() = ResponseBody::file(FileBody::new(file, count));
    Ok(response)
}

fn content_type(path: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            mime.subtype().as_str(),
            "javascript" | "json" | "xml" | "svg+xml"
        );
    let value = if textual {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

fn header_value(value: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(value).map_err(|e| Error::new(ErrorKind::Internal).with_source(e))
}
