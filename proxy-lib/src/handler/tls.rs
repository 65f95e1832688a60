//! What TLS decides for a request: on a TLS connection the host must name
//! the app the handshake's server name named (else 421), and a cleartext
//! request to an app that wants HTTPS is sent there with a 301.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};

use crate::body::ResponseBody;
use crate::error::{Error, ErrorKind, Result};
use crate::handler::respond;
use crate::routing::AppRoutes;
use crate::server::TlsInfo;
use crate::state::Snapshot;

/// Refuses a request on a TLS connection whose host names another app
/// than the SNI. Without SNI there is nothing to compare; an app that
/// requires client certificates is only reached through a handshake that
/// verified one (on QUIC, one its own CAs accept), whatever its opt-out
/// says.
pub(super) fn check_sni(snapshot: &Snapshot, tls: &TlsInfo, app: &AppRoutes) -> Result<()> {
    let misdirected = || {
        Err(Error::new(ErrorKind::Misdirected).with_context(format!(
            "TLS server name {:?}, app {:?}",
            tls.sni.as_deref().unwrap_or(""),
            app.name
        )))
    };
    if let Some(verifier) = &app.tls.client_auth {
        let verified = match &tls.quic_client {
            // One QUIC handshake serves every app: ask this app's CAs.
            Some(client) => client.accepted_by(verifier),
            None => tls.client_verified,
        };
        if !verified {
            return misdirected();
        }
    }
    if tls.sni.is_none() || !app.tls.sni_host_check {
        return Ok(());
    }
    match snapshot.router.app_index(tls.sni.as_deref()) {
        Some(index) if index == app.index => Ok(()),
        _ => misdirected(),
    }
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
    let mut response = respond::text(
        StatusCode::MOVED_PERMANENTLY,
        format!("301 Moved Permanently: {location}\n"),
    );
    if let Ok(value) = HeaderValue::try_from(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
