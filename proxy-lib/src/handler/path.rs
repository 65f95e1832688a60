//! Request paths as routing sees them: dot segments resolved, so that a
//! prefix route cannot be escaped with `/public/../admin` or its
//! percent-encoded forms; and a dot segment that only an upstream would
//! see, behind an encoded slash (`/public/..%2Fadmin`), a backslash or a
//! path parameter (`/public/..;/admin`, as Tomcat reads it), is forbidden
//! (403). Encoded slashes themselves pass (`/api/group%2Fproject`).

use std::borrow::Cow;

use crate::error::{Error, ErrorKind, Result};

/// Resolves `.` and `..` segments (also when percent-encoded) in an
/// origin-form path. A path that climbs above the root is forbidden (403);
/// a target that is not a path at all is a bad request.
pub(crate) fn normalize(path: &str) -> Result<Cow<'_, str>> {
    let resolved = resolve(path)?;
    if resolved.bytes().any(|b| matches!(b, b'%' | b';' | b'\\')) && hides_dot_segment(&resolved) {
        return Err(Error::new(ErrorKind::Forbidden)
            .with_context("a dot segment behind an encoded slash, a backslash or a parameter"));
    }
    Ok(resolved)
}

/// Whether `path` has a dot segment once `%2F`, `%5C` and `\` are read as
/// slashes and `;parameters` are cut from segments, as some upstreams read
/// paths.
fn hides_dot_segment(path: &str) -> bool {
    let mut rest = path;
    while !rest.is_empty() {
        let end = separator(rest).unwrap_or((rest.len(), rest.len()));
        let segment = &rest[..end.0];
        let segment = segment.split(';').next().unwrap_or(segment);
        if dot_segment(segment).is_some() {
            return true;
        }
        rest = &rest[end.1..];
    }
    false
}

/// Where the first separator of `path` starts and ends: `/`, `\`, or a
/// percent-encoded slash or backslash.
fn separator(path: &str) -> Option<(usize, usize)> {
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'/' | b'\\' => return Some((i, i + 1)),
            b'%' if matches!(
                (
                    bytes.get(i + 1),
                    bytes.get(i + 2).map(u8::to_ascii_lowercase)
                ),
                (Some(b'2'), Some(b'f')) | (Some(b'5'), Some(b'c'))
            ) =>
            {
                return Some((i, i + 3));
            }
            _ => {}
        }
    }
    None
}

/// [`normalize`] without the look behind encoded separators.
fn resolve(path: &str) -> Result<Cow<'_, str>> {
    if !path.starts_with('/') {
        return Err(Error::new(ErrorKind::BadRequest).with_context("request target is not a path"));
    }
    if !path
        .split('/')
        .any(|segment| dot_segment(segment).is_some())
    {
        return Ok(Cow::Borrowed(path));
    }
    let mut kept: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    let mut trailing_slash = false;
    for (i, segment) in segments.into_iter().enumerate() {
        match dot_segment(segment) {
            Some(Dot::One) => trailing_slash = i == last,
            Some(Dot::Two) => {
                if kept.pop().is_none() {
                    return Err(
                        Error::new(ErrorKind::Forbidden).with_context("path climbs above the root")
                    );
                }
                trailing_slash = i == last;
            }
            None => kept.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

enum Dot {
    One,
    Two,
}

/// `.` or `..`, each dot written plainly or as `%2e`/`%2E`. One pass over
/// the bytes: this runs for every segment of every request.
fn dot_segment(segment: &str) -> Option<Dot> {
    let bytes = segment.as_bytes();
    let (mut i, mut dots) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'.' => i += 1,
            b'%' if bytes.get(i + 1) == Some(&b'2')
                && matches!(bytes.get(i + 2), Some(b'e' | b'E')) =>
            {
                i += 3
            }
            _ => return None,
        }
        dots += 1;
    }
    match dots {
        1 => Some(Dot::One),
        2 => Some(Dot::Two),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_resolve() {
        let cases = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/public/../admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E./admin", "/admin"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/a/..", "/"),
            ("/a//b", "/a//b"),
            ("/a/...", "/a/..."),
            ("/a/.b", "/a/.b"),
        ];
        for (path, want) in cases {
            assert_eq!(normalize(path).unwrap(), want, "{path}");
        }
        for above in ["/..", "/a/../..", "/%2e%2e/x"] {
            assert_eq!(
                normalize(above).unwrap_err().kind(),
                ErrorKind::Forbidden,
                "{above}"
            );
        }
        for hidden in [
            "/public/..%2Fadmin",
            "/public/..%2fadmin",
            "/public/%2e%2e%2fadmin",
            "/public/..%5Cadmin",
            "/public/..\\admin",
            "/public/..;/admin",
            "/public/..;jsessionid=1/admin",
            "/public/.;x/admin",
        ] {
            assert_eq!(
                normalize(hidden).unwrap_err().kind(),
                ErrorKind::Forbidden,
                "{hidden}"
            );
        }
        for plain in [
            "/api/group%2Fproject",
            "/a;b=c/d",
            "/a/..b%2Fc",
            "/files/%2F",
            "/a/%2e%2ex",
        ] {
            assert_eq!(normalize(plain).unwrap(), plain);
        }
        for bad in ["*", "x"] {
            assert_eq!(
                normalize(bad).unwrap_err().kind(),
                ErrorKind::BadRequest,
                "{bad}"
            );
        }
    }
}
