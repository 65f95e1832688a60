//! Validated names: server names (exact or wildcard) and path prefixes.

use std::fmt;

use crate::error::{Error, Result};

/// A name an app answers to: `example.com`, or `*.example.com` for exactly
/// one extra leftmost label. Stored lowercase without a trailing dot.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ServerName {
    /// Matches the host exactly (case-insensitive).
    Exact(Box<str>),
    /// Matches `label.<suffix>` for any single label; holds the suffix.
    Wildcard(Box<str>),
}

impl ServerName {
    /// Parses and normalises a server name.
    pub fn parse(name: &str) -> Result<Self> {
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(suffix) = lower.strip_prefix("*.") {
            check_host(suffix).map_err(|why| invalid(name, why))?;
            return Ok(Self::Wildcard(suffix.into()));
        }
        check_host(&lower).map_err(|why| invalid(name, why))?;
        Ok(Self::Exact(lower.into()))
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

impl fmt::Debug for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerName({self})")
    }
}

fn invalid(name: &str, why: &str) -> Error {
    Error::config(format!("invalid server name {name:?}: {why}"))
}

/// Checks a lowercase host name or IP literal (`[v6]` bracketed).
pub(crate) fn check_host(host: &str) -> std::result::Result<(), &'static str> {
    if host.is_empty() {
        return Err("empty name");
    }
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.strip_suffix(']') {
            Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_ok() => Ok(()),
            _ => Err("not an IPv6 literal"),
        };
    }
    if host.len() > 253 {
        return Err("longer than 253 characters");
    }
    // Runs on every request's Host: bytes, not chars.
    for label in host.as_bytes().split(|&b| b == b'.') {
        if label.is_empty() || label.len() > 63 {
            return Err("empty or overlong label");
        }
        let valid = |&b: &u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if !label.iter().all(valid) {
            return Err(if label.contains(&b'*') {
                "'*' is only allowed as the whole leftmost label"
            } else {
                "only letters, digits, '-' and '_' are allowed in labels"
            });
        }
    }
    Ok(())
}

/// A route's path prefix, matched on whole segments: `/api` matches `/api`
/// and `/api/x`, never `/apix`. Stored without a trailing slash except for
/// the root `/`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PathPrefix(Box<str>);

impl PathPrefix {
    /// The root prefix, which matches every path.
    pub fn root() -> Self {
        Self("/".into())
    }

    /// Parses a prefix; it must start with `/` and hold no query, fragment
    /// or `..` segment.
    pub fn parse(path: &str) -> Result<Self> {
        check_path(path).map_err(|why| Error::config(format!("invalid path {path:?}: {why}")))?;
        let trimmed = path.trim_end_matches('/');
        Ok(Self(if trimmed.is_empty() { "/" } else { trimmed }.into()))
    }

    /// The prefix as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Length in bytes of the prefix that `path` starts with, when it does.
    pub(crate) fn match_len(&self, path: &str) -> Option<usize> {
        if &*self.0 == "/" {
            return Some(0);
        }
        let rest = path.strip_prefix(&*self.0)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(self.0.len())
    }
}

impl fmt::Debug for PathPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathPrefix({:?})", self.0)
    }
}

/// What replaces a matched [`PathPrefix`]: `/maps` → `/v1/maps` turns
/// `/maps/a?q` into `/v1/maps/a?q`.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplacePath(Box<str>);

impl ReplacePath {
    /// Parses a replacement; it must start with `/`.
    pub fn parse(path: &str) -> Result<Self> {
        check_path(path)
            .map_err(|why| Error::config(format!("invalid replace_path {path:?}: {why}")))?;
        Ok(Self(path.into()))
    }

    /// Rewrites `path` (without query), whose first `matched` bytes were the
    /// route prefix, into `out`.
    pub(crate) fn rewrite_into(&self, path: &str, matched: usize, out: &mut String) {
        let rest = &path[matched..];
        if rest.is_empty() {
            out.push_str(&self.0);
        } else {
            out.push_str(self.0.trim_end_matches('/'));
            out.push_str(rest);
        }
    }
}

impl fmt::Debug for ReplacePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplacePath({:?})", self.0)
    }
}

fn check_path(path: &str) -> std::result::Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must start with '/'");
    }
    if path.contains(['?', '#']) {
        return Err("must not contain a query or fragment");
    }
    if path.split('/').any(|segment| segment == "..") {
        return Err("must not contain '..' segments");
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be visible ASCII (percent-encode the rest)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_normalise() {
        assert_eq!(
            ServerName::parse("Example.COM.").unwrap(),
            ServerName::Exact("example.com".into())
        );
        assert_eq!(
            ServerName::parse("*.Example.com").unwrap(),
            ServerName::Wildcard("example.com".into())
        );
        assert!(ServerName::parse("[::1]").is_ok());
        for bad in ["", "a..b", "*", "a.*.b", "exa mple.com", "*.", "[zz]"] {
            assert!(ServerName::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let api = PathPrefix::parse("/api/").unwrap();
        assert_eq!(api.as_str(), "/api");
        assert_eq!(api.match_len("/api"), Some(4));
        assert_eq!(api.match_len("/api/x"), Some(4));
        assert_eq!(api.match_len("/apix"), None);
        assert_eq!(api.match_len("/"), None);
        assert_eq!(PathPrefix::root().match_len("/anything"), Some(0));
        assert!(PathPrefix::parse("api").is_err());
        assert!(PathPrefix::parse("/a/../b").is_err());
        assert!(PathPrefix::parse("/a?b").is_err());
    }

    #[test]
    fn rewrites_keep_the_rest() {
        let cases = [
            (
                "/maps",
                "/replacing/path1",
                "/maps/org/any.ext",
                "/replacing/path1/org/any.ext",
            ),
            ("/maps", "/replacing/path1", "/maps", "/replacing/path1"),
            ("/maps", "/", "/maps/x", "/x"),
            ("/maps", "/", "/maps", "/"),
            ("/maps", "/new/", "/maps/x", "/new/x"),
            ("/", "/base", "/x/y", "/base/x/y"),
        ];
        for (prefix, replace, path, want) in cases {
            let prefix = PathPrefix::parse(prefix).unwrap();
            let matched = prefix.match_len(path).unwrap();
            let mut out = String::new();
            ReplacePath::parse(replace)
                .unwrap()
                .rewrite_into(path, matched, &mut out);
            assert_eq!(out, want, "{prefix:?} -> {replace} on {path}");
        }
    }
}
