//! Forwarding a request to a route's upstreams and its response back.

mod attempt;
mod streams;

use std::collections::VecDeque;
use std::sync::Arc;

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use tracing::warn;

use self::attempt::{AttemptError, Destination};

use crate::body::{BodyState, BufferPolicy, ClientBody, RequestBody, buffer, prefetch};
use crate::clock::now_ms;
use crate::config::{LoadBalance, ProxyConfig, UpstreamProtocol};
use crate::conn::{ClientUpgrade, ConnCtx, EarlyData};
use crate::error::{Error, ErrorKind, Result};
use crate::exchange::Exchange;
use crate::handler::headers::{Forwarding, remove_hop_by_hop, wants_upgrade};
use crate::response::ResponseBody;
use crate::routing::CompiledRoute;
use crate::state::Shared;
use crate::tunnel;
use crate::upstream::{Endpoint, UpstreamBody, UpstreamSet, sticky};

/// Everything forwarding needs about the request besides the request.
#[derive(Debug)]
pub(crate) struct Forward<'a> {
    pub(crate) shared: &'a Shared,
    /// The client connection, which a tunnel keeps alive (and counted).
    pub(crate) conn: &'a Arc<ConnCtx>,
    pub(crate) config: &'a ProxyConfig,
    pub(crate) route: &'a CompiledRoute,
    pub(crate) set: &'a UpstreamSet,
    /// The normalised request path and the length of its matched prefix.
    pub(crate) path: &'a str,
    pub(crate) matched: usize,
    /// The app's client identity header, if it forwards one, and the
    /// identity of a client certificate that passed the app's policy.
    pub(crate) identity: Option<(&'a HeaderName, Option<&'a HeaderValue>)>,
}

impl Forward<'_> {
    pub(crate) async fn run(
        &self,
        mut parts: Parts,
        body: ClientBody,
        exchange: &mut Exchange,
    ) -> Result<Response<ResponseBody>> {
        if let Some(limit) = self.body_limit(&parts)
            && content_length(&parts).is_some_and(|len| len > limit)
        {
            return Err(Error::new(ErrorKind::BodyTooLarge));
        }
        let upgrade = parts.version == Version::HTTP_11
            && self.set.protocol == UpstreamProtocol::Http1
            && wants_upgrade(&parts.headers);
        let client_upgrade = upgrade
            .then(|| parts.extensions.remove::<ClientUpgrade>())
            .flatten();
        let body = body.screened(&self.config.screened.trailers);
        let (body, body_state) = self.request_body(&parts, body).await?;

        let uri = self.upstream_uri(&parts)?;
        remove_hop_by_hop(&mut parts.headers, upgrade);
        parts.headers.remove(header::EXPECT);
        // The upstream's framing is what the body is (its exact length, or
        // chunked), never what the client announced: each upstream
        // protocol frames it from the body itself.
        parts.headers.remove(header::CONTENT_LENGTH);
        Forwarding {
            peer: exchange.client.ip(),
            peer_value: &self.conn.peer_ip,
            reported: exchange.reported.as_ref(),
            proto: if self.conn.tls.is_some() {
                "https"
            } else {
                "http"
            },
            port: &self.conn.port,
            host: exchange.host.as_ref(),
            forwarded_header: self.set.forwarded_header,
            upgrade_insecure_requests: self.set.upgrade_insecure_requests,
            client_identity: self.identity,
            identity_headers: &self.config.screened.identity,
        }
        .apply(&mut parts.headers);
        parts.uri = uri;
        if parts.extensions.get::<EarlyData>().is_some() {
            // RFC 8470 5.1: the upstream may answer 425 itself.
            parts
                .headers
                .insert("early-data", HeaderValue::from_static("1"));
        }
        let sticky_id = match self.set.policy {
            LoadBalance::Sticky => sticky::find(&parts.headers, &self.config.sticky_cookie),
            _ => None,
        };
        let req = Request::from_parts(parts, body);

        let (endpoint, response) = self
            .try_endpoints(req, sticky_id, upgrade, body_state.as_deref(), exchange)
            .await?;
        self.respond(endpoint, response, client_upgrade, sticky_id, exchange)
    }

    async fn request_body(
        &self,
        parts: &Parts,
        body: ClientBody,
    ) -> Result<(RequestBody, Option<Arc<BodyState>>)> {
        use http_body::Body as _;
        if body.is_end_stream() {
            return Ok((RequestBody::empty(), None));
        }
        let limit = self.body_limit(parts);
        let idle = self.config.timeouts.client_body;
        if self.set.request_buffering && !streams::is_stream(parts, self.set.protocol) {
            let limits = &self.config.limits;
            let policy = BufferPolicy {
                limit,
                idle,
                memory: limits.request_buffer_memory,
                dir: limits.request_buffer_dir.as_deref(),
                disk: &self.shared.buffered_on_disk,
                disk_max: limits.request_buffer_disk,
                pressure: &self.shared.admission.pressure,
            };
            let (body, state) = buffer(body, &policy).await?;
            return Ok((RequestBody::buffered(body), state));
        }
        if parts.version <= Version::HTTP_11
            && parts.headers.contains_key(header::TRANSFER_ENCODING)
        {
            return prefetch(body, limit, idle).await;
        }
        let (body, state) = RequestBody::streaming(VecDeque::new(), body, 0, limit, idle);
        Ok((body, Some(state)))
    }

    /// The largest request body: HTTP/3's own limit on HTTP/3, if set.
    fn body_limit(&self, parts: &Parts) -> Option<u64> {
        let http3 = (parts.version == Version::HTTP_3)
            .then(|| {
                self.config
                    .tls
                    .as_ref()?
                    .settings
                    .http3
                    .as_ref()?
                    .request_max_body_size
            })
            .flatten();
        http3.or(self.config.limits.request_max_body_size)
    }

    /// Origin-form for HTTP/1.1 upstreams, absolute-form for HTTP/2 (which
    /// sends the authority as `:authority`; the authority is set per
    /// endpoint).
    fn upstream_uri(&self, parts: &Parts) -> Result<Uri> {
        let query = parts.uri.query();
        let unchanged = self.route.replace.is_none() && self.path == parts.uri.path();
        let path_and_query = if unchanged {
            match parts.uri.path_and_query() {
                Some(pq) => pq.clone(),
                None => PathAndQuery::from_static("/"),
            }
        } else {
            let mut target =
                String::with_capacity(self.path.len() + query.map_or(0, str::len) + 16);
            match &self.route.replace {
                Some(replace) => replace.rewrite_into(self.path, self.matched, &mut target),
                None => target.push_str(self.path),
            }
            if let Some(query) = query {
                target.push('?');
                target.push_str(query);
            }
            PathAndQuery::try_from(target).map_err(|e| {
                Error::new(ErrorKind::BadRequest)
                    .with_context("unusable rewritten path")
                    .with_source(e)
            })?
        };
        Ok(Uri::from(path_and_query))
    }

    /// Tries the endpoints in policy order; the exchange records the one
    /// tried last, so a failure's log line names it.
    async fn try_endpoints(
        &self,
        mut req: Request<RequestBody>,
        sticky_id: Option<u64>,
        upgrade: bool,
        body_state: Option<&BodyState>,
        exchange: &mut Exchange,
    ) -> Result<(Arc<Endpoint>, Response<UpstreamBody>)> {
        let tracks_health = self.set.tracks_health();
        let now = if tracks_health { now_ms() } else { 0 };
        let timeouts = &self.config.timeouts;
        let mut last_error = None;
        let original = exchange.host.clone();
        for endpoint in self.set.order(sticky_id) {
            if tracks_health && endpoint.is_down(now) {
                continue;
            }
            exchange.upstream = Some(endpoint.clone());
            let target = Destination {
                endpoint,
                host: original.as_ref(),
                upgrade,
            };
            match self.attempt(&target, &mut req, body_state, exchange).await {
                Ok(response) => {
                    endpoint.mark_up();
                    return Ok((endpoint.clone(), response));
                }
                Err(AttemptError::Sent(error)) => return Err(error),
                Err(AttemptError::Unsent(error)) => {
                    let certificate = error.kind() == ErrorKind::UpstreamCertificate;
                    let retry_certificate = endpoint
                        .tls
                        .as_ref()
                        .is_some_and(|tls| tls.retry_on_certificate_error());
                    if (error.kind().is_retryable() || certificate) && tracks_health {
                        endpoint.mark_down(timeouts.upstream_down);
                    }
                    if certificate && !retry_certificate {
                        return Err(error);
                    }
                    if let Some(suppressed) = self.shared.log_limits.next_upstream.admit() {
                        warn!(upstream = %endpoint.upstream, %error, suppressed, "upstream unavailable; trying the next one");
                    }
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::new(ErrorKind::NoHealthyUpstream)))
    }

    fn respond(
        &self,
        endpoint: Arc<Endpoint>,
        response: Response<UpstreamBody>,
        client_upgrade: Option<ClientUpgrade>,
        sticky_id: Option<u64>,
        exchange: &mut Exchange,
    ) -> Result<Response<ResponseBody>> {
        let (mut parts, body) = response.into_parts();
        parts.version = Version::HTTP_11;
        if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Err(
                    Error::new(ErrorKind::UpstreamProtocol).with_context(format!(
                        "{}: unrequested protocol switch",
                        endpoint.upstream
                    )),
                );
            };
            let upstream_upgrade = match body {
                UpstreamBody::H1(body) => body.into_upgraded(),
                UpstreamBody::H2(_) => None,
            };
            let Some(upstream_upgrade) = upstream_upgrade else {
                return Err(
                    Error::new(ErrorKind::Internal).with_context("upstream upgrade missing")
                );
            };
            remove_hop_by_hop(&mut parts.headers, true);
            let idle = self.config.timeouts.tunnel_idle;
            tunnel::spawn(
                self.shared,
                self.conn.clone(),
                client_upgrade,
                upstream_upgrade,
                idle,
                exchange,
            );
            return Ok(Response::from_parts(parts, ResponseBody::empty()));
        }
        remove_hop_by_hop(&mut parts.headers, false);
        if self.set.policy == LoadBalance::Sticky
            && sticky_id != Some(endpoint.sticky_id)
            && let Some(cookie) =
                sticky::set_cookie(endpoint.sticky_id, &self.config.sticky_cookie, false)
        {
            parts.headers.append(header::SET_COOKIE, cookie);
        }
        let body = match body {
            UpstreamBody::H1(mut body) => {
                body.return_to(endpoint, self.config.limits.upstream_max_idle);
                ResponseBody::h1(body)
            }
            UpstreamBody::H2(body) => ResponseBody::upstream(body),
        };
        Ok(Response::from_parts(parts, body))
    }
}

/// The length the client announced: every protocol's parser has checked
/// it by now (ours and h2 strictly, HTTP/3's in `server/quic.rs`), so the
/// first value is the only one.
fn content_length(parts: &Parts) -> Option<u64> {
    let value = parts.headers.get(header::CONTENT_LENGTH)?;
    crate::http1::parse_length(value.as_bytes())
}
