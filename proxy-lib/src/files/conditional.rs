//! Conditional requests (RFC 9110 section 13) against a file's validators.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::{self, HeaderValue};

/// A file's entity tag and modification time (whole seconds).
#[derive(Debug)]
pub(crate) struct Validators {
    pub(crate) etag: String,
    pub(crate) modified: Option<SystemTime>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Precondition {
    Proceed,
    NotModified,
    Failed,
}

impl Validators {
    pub(crate) fn new(len: u64, modified: Option<SystemTime>) -> Self {
        let since_epoch = modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok());
        let (secs, nanos) = since_epoch.map_or((0, 0), |d| (d.as_secs(), d.subsec_nanos()));
        Self {
            etag: format!("\"{len:x}-{secs:x}{nanos:08x}\""),
            modified: since_epoch.map(|d| UNIX_EPOCH + Duration::from_secs(d.as_secs())),
        }
    }

    /// Evaluates the preconditions in the order RFC 9110 13.2.2 gives.
    pub(crate) fn evaluate(&self, headers: &HeaderMap) -> Precondition {
        if let Some(if_match) = headers.get(header::IF_MATCH) {
            if !self.matches(if_match, true) {
                return Precondition::Failed;
            }
        } else if let Some(since) = date(headers.get(header::IF_UNMODIFIED_SINCE))
            && self.modified.is_some_and(|m| m > since)
        {
            return Precondition::Failed;
        }
        if let Some(if_none_match) = headers.get(header::IF_NONE_MATCH) {
            if self.matches(if_none_match, false) {
                return Precondition::NotModified;
            }
        } else if let Some(since) = date(headers.get(header::IF_MODIFIED_SINCE))
            && self.modified.is_some_and(|m| m <= since)
        {
            return Precondition::NotModified;
        }
        Precondition::Proceed
    }

    /// Whether a Range may be honoured under `If-Range`.
    pub(crate) fn if_range_holds(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::IF_RANGE) else {
            return true;
        };
        let Ok(text) = value.to_str() else {
            return false;
        };
        let text = text.trim();
        if text.starts_with('"') {
            return text == self.etag;
        }
        if text.starts_with("W/") {
            return false;
        }
        date(Some(value)).is_some_and(|d| self.modified == Some(d))
    }

    fn matches(&self, value: &HeaderValue, strong: bool) -> bool {
        let Ok(text) = value.to_str() else {
            return false;
        };
        text.split(',').map(str::trim).any(|tag| {
            tag == "*"
                || tag == self.etag
                || (!strong && tag.strip_prefix("W/") == Some(self.etag.as_str()))
        })
    }
}

fn date(value: Option<&HeaderValue>) -> Option<SystemTime> {
    httpdate::parse_http_date(value?.to_str().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (n.clone(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn preconditions_evaluate_in_order() {
        let modified = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let v = Validators::new(10, Some(modified));
        let earlier = httpdate::fmt_http_date(modified - Duration::from_secs(10));
        let same = httpdate::fmt_http_date(modified);
        let weak = format!("W/{}", v.etag);
        assert_eq!(
            v.evaluate(&headers(&[(header::IF_NONE_MATCH, &v.etag)])),
            Precondition::NotModified
        );
        assert_eq!(
            v.evaluate(&headers(&[(header::IF_NONE_MATCH, &weak)])),
            Precondition::NotModified
        );
        assert_eq!(
            v.evaluate(&headers(&[(header::IF_NONE_MATCH, "\"x\"")])),
            Precondition::Proceed
        );
        assert_eq!(
            v.evaluate(&headers(&[(header::IF_MODIFIED_SINCE, &same)])),
            Precondition::NotModified
        );
        assert_eq!(
            v.evaluate(&headers(&[(header::IF_MODIFIED_SINCE, &earlier)])),
            Precondition::Proceed
        );
        // If-None-Match wins over If-Modified-Since.
        let both = headers(&[
            (header::IF_NONE_MATCH, "\"x\""),
            (header::IF_MODIFIED_SINCE, &same),
        ]);
        assert_eq!(v.evaluate(&both), Precondition::Proceed);
        assert_eq!(
            v.evaluate(&headers(&[(header::IF_MATCH, "\"x\"")])),
            Precondition::Failed
        );
        assert_eq!(
            v.evaluate(&headers(&[(header::IF_MATCH, &weak)])),
            Precondition::Failed
        );
        assert_eq!(
            v.evaluate(&headers(&[(header::IF_UNMODIFIED_SINCE, &earlier)])),
            Precondition::Failed
        );
        assert!(v.if_range_holds(&headers(&[(header::IF_RANGE, &v.etag)])));
        assert!(!v.if_range_holds(&headers(&[(header::IF_RANGE, &weak)])));
        assert!(v.if_range_holds(&headers(&[(header::IF_RANGE, &same)])));
        assert!(!v.if_range_holds(&headers(&[(header::IF_RANGE, &earlier)])));
    }
}
