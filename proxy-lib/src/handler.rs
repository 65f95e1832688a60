//! The protocol-independent request handler: validate the head, find the
//! app and route, then forward upstream or serve files. Every failure becomes
//! a short text response whose status its error kind decides.

mod forward;
mod headers;
mod path;
mod respond;
mod tls_policy;
mod validate;

use std::sync::Arc;

use crate::body::ClientBody;
use crate::conn::{ConnActivity, ConnCtx, EarlyData};
use crate::error::{Error, ErrorKind, Result};
use crate::exchange::Exchange;
use crate::files;
use crate::forwarded_for;
use crate::response::ResponseBody;
use crate::routing::Target;
use crate::state::{Shared, Snapshot};
use http::{Request, Response};

/// Answers one request. Never fails: errors become responses.
pub(crate) async fn handle(
    shared: &Shared,
    ctx: &Arc<ConnCtx>,
    req: Request<ClientBody>,
) -> Response<ResponseBody> {
    let in_flight = ctx.activity.as_ref().map(ConnActivity::begin_request);
    let (parts, body) = req.into_parts();
    let snapshot = shared.snapshot();
    let metrics = snapshot
        .config
        .admin
        .is_some()
        .then(|| shared.metrics.clone());
    let body = match &metrics {
        Some(metrics) => body.counted(metrics.request_bytes(parts.version)),
        None => body,
    };
    let mut exchange = Box::new(Exchange::new(ctx, &parts, in_flight, metrics));
    exchange.redact_query = snapshot.config.redact_query_in_access_log;
    exchange.reported = forwarded_for::reported(
        ctx.peer.ip(),
        &parts.headers,
        &snapshot.config.trusted_proxies,
    );
    let result = serve(shared, ctx, &snapshot, parts, body, &mut exchange).await;
    let mut response = result.unwrap_or_else(|e| respond::error(&e, &exchange, &shared.log_limits));
    if ctx.tls.as_ref().is_some_and(|tls| tls.alpn != "h3")
        && let Some(alt_svc) = shared.alt_svc.load().as_deref()
    {
        response
            .headers_mut()
            .insert(http::header::ALT_SVC, alt_svc.clone());
    }
    exchange.status = response.status().as_u16();
    response.body_mut().attach(exchange);
    response
}

async fn serve(
    shared: &Shared,
    conn: &Arc<ConnCtx>,
    snapshot: &Snapshot,
    parts: http::request::Parts,
    body: ClientBody,
    exchange: &mut Exchange,
) -> Result<Response<ResponseBody>> {
    validate::method(&parts)?;
    let app = {
        let host = validate::request_host(&parts)?;
        let app = snapshot.router.app(host.as_deref()).ok_or_else(|| {
            Error::new(ErrorKind::UnknownHost)
                .with_context(format!("host {:?}", host.as_deref().unwrap_or("")))
        })?;
        exchange.app = Some(app.name.clone());
        if parts.extensions.get::<EarlyData>().is_some() {
            tls_policy::check_early_data(&parts, app)?;
        }
        if let (None, Some(server_tls), Some(host)) = (&conn.tls, &snapshot.config.tls, &host)
            && app.tls.https_redirection
        {
            let port = server_tls
                .settings
                .public_port
                .or_else(|| shared.bound_tls_port());
            return Ok(tls_policy::redirect(&parts, host, port));
        }
        tls_policy::authorize(snapshot, conn.tls.as_deref(), app)?;
        app
    };
    // The URI is reference-counted: cloning it lets the path outlive `parts`.
    let uri = parts.uri.clone();
    let path = path::normalize(uri.path())?;
    let (route, matched) = app
        .route(&path)
        .ok_or_else(|| Error::new(ErrorKind::NoRoute))?;
    exchange.route.clone_from(&route.metrics);
    match &route.target {
        Target::Upstreams(set) => {
            let forward = forward::Forward {
                shared,
                conn,
                config: &snapshot.config,
                route,
                set,
                path: &path,
                matched,
                identity: app.tls.client_identity_header.as_ref().map(|header| {
                    (
                        header,
                        tls_policy::client_identity(conn.tls.as_deref(), app),
                    )
                }),
            };
            forward.run(parts, body, exchange).await
        }
        Target::Files(root) => files::serve(root, route, &path, matched, &parts).await,
    }
}
