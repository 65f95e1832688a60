//! Request paths as routing sees them: dot segments resolved, so that a
//! prefix route cannot be escaped with `/public/../admin` or its
//! percent-encoded forms.

use std::borrow::Cow;

use crate::error::{Error, ErrorKind, Result};

/// Resolves `.` and `..` segments (also when percent-encoded) in an
/// origin-form path. A path that climbs above the root is forbidden (403);
/// a target that is not a path at all is a bad request.
pub(crate) fn normalize(path: &str) -> Result<Cow<'_, str>> {
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
        for bad in ["*", "x"] {
            assert_eq!(
                normalize(bad).unwrap_err().kind(),
                ErrorKind::BadRequest,
                "{bad}"
            );
        }
    }
}
