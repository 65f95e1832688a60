//! Fields a client may never send upstream, whichever app it asks: every
//! app's client identity header (an upstream shared by a public app and an
//! mTLS app must never see a client-written identity), also in its
//! underscore spelling (CGI and many frameworks read `X_Client_Cert` as
//! `X-Client-Cert`); and in trailers, which upstreams may merge into the
//! head, the forwarding fields this proxy sets as well.

use std::sync::Arc;

use http::HeaderMap;
use http::header::{self, HeaderName};

use crate::config::App;

/// The forwarding fields the proxy sets in the head; a client's copies in
/// trailers are dropped.
const FORWARDING: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "forwarded",
];

/// The screened names of one configuration, made once when it is built.
#[derive(Debug, Clone, Default)]
pub(crate) struct Screened {
    /// Identity headers of every app, both spellings.
    pub(crate) identity: Box<[HeaderName]>,
    /// What trailers lose: `identity`, the forwarding fields, and the
    /// fields that frame or route a message.
    pub(crate) trailers: Arc<[HeaderName]>,
}

impl Screened {
    pub(crate) fn of(apps: &[App]) -> Self {
        let mut identity: Vec<HeaderName> = Vec::new();
        for name in apps
            .iter()
            .filter_map(|app| app.tls.client_identity_header.as_ref())
        {
            let underscored = name.as_str().replace('-', "_");
            let spellings = [Some(name.clone()), HeaderName::try_from(underscored).ok()];
            for spelling in spellings.into_iter().flatten() {
                if !identity.contains(&spelling) {
                    identity.push(spelling);
                }
            }
        }
        let mut trailers = identity.clone();
        trailers.extend(FORWARDING.iter().map(|name| HeaderName::from_static(name)));
        trailers.extend([
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::HOST,
            header::AUTHORIZATION,
            header::COOKIE,
        ]);
        Self {
            identity: identity.into_boxed_slice(),
            trailers: trailers.into(),
        }
    }
}

/// Removes every field of `names` from `headers`.
pub(crate) fn remove_all(headers: &mut HeaderMap, names: &[HeaderName]) {
    for name in names {
        headers.remove(name);
    }
}
