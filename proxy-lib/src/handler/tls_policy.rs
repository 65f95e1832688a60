//! What TLS decides for a request: an app requiring client certificates is
//! reached only with a chain its own policy accepts (else 421); on a TLS
//! connection the host must name the app the handshake's server name named
//! (else 421); and a cleartext request to an app that wants HTTPS is sent
//! there with a 301.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};

use crate::client_auth;
use crate::conn::TlsInfo;
use crate::error::{Error, ErrorKind, Result};
use crate::response::{ResponseBody, text};
use crate::routing::AppRoutes;
use crate::state::Snapshot;

/// Refuses a request to an app requiring client certificates unless the
/// connection's chain passes that app's own policy (whatever the handshake
/// verified, and on cleartext connections, which have none), and a request
/// on a TLS connection whose host names another app than the SNI (unless
/// the app opts out; without SNI there is nothing to compare).
pub(super) fn authorize(snapshot: &Snapshot, tls: Option<&TlsInfo>, app: &AppRoutes) -> Result<()> {
    let sni = tls.and_then(|tls| tls.sni.as_deref());
    let misdirected = |why: &str| {
        Err(Error::new(ErrorKind::Misdirected).with_context(format!(
            "{why}: TLS server name {:?}, app {:?}",
            sni.unwrap_or(""),
            app.name
        )))
    };
    let peer = tls.and_then(|tls| tls.client.as_ref());
    if !client_auth::permits(app.tls.client_auth.as_ref(), peer) {
        return misdirected("no client certificate this app accepts");
    }
    if tls.is_none() || sni.is_none() || !app.tls.sni_host_check {
        return Ok(());
    }
    match snapshot.router.app_index(sni) {
        Some(index) if index == app.index => Ok(()),
        _ => misdirected("host names another app"),
    }
}

/// The identity of the connection's client certificate, if it passes the
/// app's policy (never from a chain another app's policy accepted).
pub(super) fn client_identity<'a>(
    tls: Option<&'a TlsInfo>,
    app: &AppRoutes,
) -> Option<&'a HeaderValue> {
    let policy = app.tls.client_auth.as_ref()?;
    tls?.client.as_ref()?.identity_for(policy)
}

/// A request that arrived in 0-RTT early data is served only by an app
/// that accepts early data, and only for a safe method (RFC 8470).
pub(super) fn check_early_data(parts: &Parts, app: &AppRoutes) -> Result<()> {
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if app.tls.early_data && safe {
        return Ok(());
    }
    Err(Error::new(ErrorKind::TooEarly).with_context(format!(
        "{} in early data to app {:?}",
        parts.method, app.name
    )))
}

/// A 301 to the request's URL over HTTPS on `port` (left out when 443).
pub(super) fn redirect(parts: &Parts, host: &str, port: Option<u16>) -> Response<ResponseBody> {
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let location = match port {
        Some(port) if port != 443 => format!("https://{host}:{port}{path}"),
        _ => format!("https://{host}{path}"),
    };
    let mut response = text(
        StatusCode::MOVED_PERMANENTLY,
        format!("301 Moved Permanently: {location}\n"),
    );
    if let Ok(value) = HeaderValue::try_from(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
