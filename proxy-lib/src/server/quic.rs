//! HTTP/3: a QUIC endpoint on UDP beside a TLS listener, its connections,
//! and each request stream handed to the same handler as HTTP/1.1 and
//! HTTP/2.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use h3::error::Code;
use h3::server::{RequestResolver, RequestStream};
use http::{HeaderValue, Method, Request, Response, header};
use http_body::Body as _;
use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::admission::ClientSlot;
use crate::body::{ClientBody, H3RequestBody, Malformed};
use crate::client_auth::PeerChain;
use crate::conn::{ConnCtx, EarlyData, TlsInfo};
use crate::handler;
use crate::http1;
use crate::metrics::Protocol;
use crate::response::ResponseBody;
use crate::server::listener;
use crate::server::parking::Lot;
use crate::state::Shared;

type H3Conn = h3::server::Connection<h3_quinn::Connection, Bytes>;
type SendStream = RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;

/// Binds a QUIC endpoint on UDP `addr`.
pub(crate) fn bind(addr: SocketAddr, config: quinn::ServerConfig) -> io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(addr)?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
}

/// Accepts QUIC connections until `stop`, the drain or the endpoint's end.
pub(crate) async fn accept_loop(
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    lot: Arc<Lot>,
    stop: CancellationToken,
) {
    let open = Arc::new(AtomicU32::new(0));
    // X-Forwarded-Port, made once for every connection it accepts.
    let port = HeaderValue::from(endpoint.local_addr().map_or(0, |addr| addr.port()));
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            () = stop.cancelled() => break,
            () = shared.draining.cancelled() => break,
        };
        let Some(incoming) = incoming else { break };
        let (limit, early_data) = shared
            .snapshot()
            .config
            .tls
            .as_ref()
            .and_then(|tls| Some((tls.settings.http3.as_ref()?, tls.early_data)))
            .map_or((0, false), |(h3, early)| {
                (h3.max_concurrent_connections, early)
            });
        if open.load(Ordering::Acquire) >= limit {
            if let Some(suppressed) = shared.log_limits.quic_full.admit() {
                warn!(peer = %incoming.remote_address(), suppressed, "HTTP/3 max_concurrent_connections reached; refusing");
            }
            incoming.refuse();
            continue;
        }
        let slot = match listener::admit(&shared, &lot, incoming.remote_address()) {
            Ok(slot) => slot,
            Err(refused) => {
                if let Some(suppressed) = shared.log_limits.clients_full.admit() {
                    let limit = refused.limit();
                    warn!(peer = %incoming.remote_address(), limit, suppressed, "connection limit reached; refusing QUIC connections");
                }
                incoming.refuse();
                continue;
            }
        };
        open.fetch_add(1, Ordering::AcqRel);
        let counted = Counted(open.clone());
        let accepted = Accepted {
            slot,
            port: port.clone(),
            _counted: counted,
        };
        let task = serve_connection(incoming, shared.clone(), accepted, early_data);
        shared.tasks.spawn(task);
    }
    // Connections already open finish on their own (the drain closes them).
    endpoint.set_server_config(None);
}

/// One open QUIC connection, counted against `max_concurrent_connections`.
struct Counted(Arc<AtomicU32>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What admitting a QUIC connection gave it.
struct Accepted {
    slot: ClientSlot,
    port: HeaderValue,
    _counted: Counted,
}

async fn serve_connection(
    incoming: quinn::Incoming,
    shared: Arc<Shared>,
    accepted: Accepted,
    early_data: bool,
) {
    let peer = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(error) => {
            debug!(%peer, %error, "QUIC connection refused");
            return;
        }
    };
    // With 0-RTT on, requests are taken before the handshake completes;
    // until `handshake` resolves, they are early data.
    let zero_rtt = if early_data {
        connecting.into_0rtt()
    } else {
        Err(connecting)
    };
    let (conn, mut handshake) = match zero_rtt {
        Ok((conn, accepted)) => (conn, Some(accepted)),
        Err(connecting) => match connecting.await {
            Ok(conn) => (conn, None),
            Err(error) => {
                debug!(%peer, %error, "QUIC handshake failed");
                return;
            }
        },
    };
    let open = shared.metrics.open(Protocol::H3);
    let Accepted {
        slot,
        port,
        _counted,
    } = accepted;
    let ctx = Arc::new(ConnCtx::multiplexed(
        peer,
        port,
        slot,
        tls_info(&conn),
        open,
    ));
    let max_field_section = shared.snapshot().config.limits.max_header_size as u64;
    let built = h3::server::builder()
        .max_field_section_size(max_field_section)
        .build(h3_quinn::Connection::new(conn.clone()))
        .await;
    let mut h3: H3Conn = match built {
        Ok(h3) => h3,
        Err(error) => {
            debug!(%peer, %error, "HTTP/3 connection setup failed");
            return;
        }
    };
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            // First, so that a request read after the handshake is never
            // taken for early data.
            () = async { if let Some(done) = handshake.as_mut() { let _ = done.await; } },
                if handshake.is_some() => handshake = None,
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    let early = handshake.is_some();
                    let task = serve_request(resolver, shared.clone(), ctx.clone(), early);
                    shared.tasks.spawn(task);
                }
                Ok(None) => break,
                Err(error) => {
                    if !error.is_h3_no_error() {
                        debug!(%peer, %error, "HTTP/3 connection ended with an error");
                    }
                    break;
                }
            },
            () = shared.draining.cancelled(), if !closing => {
                closing = true;
                // GOAWAY: requests in flight finish, no new ones start.
                let _ = h3.shutdown(0).await;
            }
            () = shared.hard_stop.cancelled() => {
                conn.close(quinn::VarInt::from_u32(0x100), b"shutting down");
                break;
            }
        }
    }
}

/// What the QUIC handshake settled, as the TLS connections record it.
fn tls_info(conn: &quinn::Connection) -> TlsInfo {
    let sni = conn
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.server_name)
        .map(|name| name.trim_end_matches('.').to_ascii_lowercase().into());
    let chain = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .filter(|chain| !chain.is_empty());
    TlsInfo {
        sni,
        version: "TLSv1_3",
        cipher: "QUIC",
        group: "-",
        alpn: "h3",
        // The handshake accepted a certificate from any app's CAs: each
        // app checks it against its own (client_auth.rs).
        client: chain.map(|chain| PeerChain::new(*chain)),
    }
}

async fn serve_request(
    resolver: RequestResolver<h3_quinn::Connection, Bytes>,
    shared: Arc<Shared>,
    ctx: Arc<ConnCtx>,
    early: bool,
) {
    let (mut req, stream) = match resolver.resolve_request().await {
        Ok(resolved) => resolved,
        Err(error) => {
            debug!(peer = %ctx.peer, %error, "HTTP/3 request refused");
            return;
        }
    };
    if early {
        req.extensions_mut().insert(EarlyData);
    }
    let (mut send, mut recv) = stream.split();
    let length = match http1::declared_length(req.headers()) {
        Ok(length) => length,
        Err(why) => {
            debug!(peer = %ctx.peer, why, "HTTP/3 request malformed");
            recv.stop_sending(Code::H3_MESSAGE_ERROR);
            send.stop_stream(Code::H3_MESSAGE_ERROR);
            return;
        }
    };
    let (body, malformed) = match request_body(&req, recv, length).await {
        Ok(body) => body,
        Err(error) => {
            debug!(peer = %ctx.peer, %error, "HTTP/3 request body failed");
            send.stop_stream(Code::H3_MESSAGE_ERROR);
            return;
        }
    };
    let response = handler::handle(&shared, &ctx, req.map(|()| body)).await;
    if malformed.as_ref().is_some_and(Malformed::is_set) {
        // RFC 9114 4.1.2: a stream error, not an answer.
        debug!(peer = %ctx.peer, "HTTP/3 request body disagreed with its Content-Length");
        send.stop_stream(Code::H3_MESSAGE_ERROR);
        return;
    }
    if let Err(error) = respond(&mut send, response).await {
        debug!(peer = %ctx.peer, %error, "HTTP/3 response not sent whole");
        send.stop_stream(Code::H3_INTERNAL_ERROR);
    }
}

/// The request's body, held to its declared `length`, and the mark it
/// sets if it breaks it. A request without `Content-Length` whose method
/// rarely carries one (GET, HEAD...) has its first frame awaited: it comes
/// with the headers, and tells a request with no body (forwarded as one)
/// from one whose length is unknown (forwarded chunked).
async fn request_body(
    req: &Request<()>,
    recv: RequestStream<h3_quinn::RecvStream, Bytes>,
    length: Option<u64>,
) -> Result<(ClientBody, Option<Malformed>), crate::error::BoxError> {
    if length == Some(0) {
        // Nothing more is read from the stream, so nothing more is sent on.
        return Ok((ClientBody::Empty, None));
    }
    let peek = length.is_none()
        && matches!(
            *req.method(),
            Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE | Method::TRACE
        );
    let malformed = Malformed::default();
    Ok(
        match H3RequestBody::new(recv, length, peek, malformed.clone()).await? {
            Some(body) => (ClientBody::H3(Box::new(body)), Some(malformed)),
            None => (ClientBody::Empty, None),
        },
    )
}

/// Sends the head, the body's frames and its trailers, then ends the stream.
async fn respond(
    send: &mut SendStream,
    response: Response<ResponseBody>,
) -> Result<(), crate::error::BoxError> {
    let (mut parts, mut body) = response.into_parts();
    // Connection-specific fields have no place in HTTP/3 (RFC 9114 4.2).
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        http::HeaderName::from_static("keep-alive"),
        http::HeaderName::from_static("proxy-connection"),
    ] {
        parts.headers.remove(name);
    }
    send.send_response(Response::from_parts(parts, ())).await?;
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => {
                if !data.is_empty() {
                    send.send_data(data).await?;
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    send.send_trailers(trailers).await?;
                    break;
                }
            }
        }
    }
    send.finish().await?;
    Ok(())
}
