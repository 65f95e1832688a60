//! Active health checks: one task per endpoint and check, probing at the
//! check's interval and keeping the endpoint's verdict for the routes that
//! use it. A task ends when no route uses its verdict any more (a reload
//! dropped it) or the proxy drains; an unchanged reload keeps both the
//! task and the verdict.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use http::{Request, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::body::RequestBody;
use crate::config::{HealthCheck, Probe};
use crate::upstream::Endpoint;
use crate::upstream::connect::connect;
use crate::upstream::connector::Speaks;

/// An endpoint's verdict under one check: healthy until probes say not.
#[derive(Debug)]
pub(crate) struct Verdict {
    healthy: AtomicBool,
}

impl Verdict {
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// Starts probing `endpoint` under `check`; the verdict lives as long as
/// the routes that hold it.
pub(crate) fn start(
    endpoint: &Arc<Endpoint>,
    check: &HealthCheck,
    stop: &CancellationToken,
) -> Arc<Verdict> {
    let verdict = Arc::new(Verdict {
        healthy: AtomicBool::new(true),
    });
    // Outside a runtime (a configuration built for inspection) nothing
    // probes, and the upstream counts as healthy.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let task = run(
            Arc::downgrade(endpoint),
            check.clone(),
            Arc::downgrade(&verdict),
            stop.clone(),
        );
        runtime.spawn(task);
    }
    verdict
}

async fn run(
    endpoint: Weak<Endpoint>,
    check: HealthCheck,
    verdict: Weak<Verdict>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(check.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut failures, mut successes) = (0u32, 0u32);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let (Some(endpoint), Some(verdict)) = (endpoint.upgrade(), verdict.upgrade()) else {
            return;
        };
        let outcome = tokio::time::timeout(check.timeout, probe(&endpoint, &check))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", check.timeout)));
        let upstream = &endpoint.upstream;
        match outcome {
            Ok(()) => {
                failures = 0;
                successes = successes.saturating_add(1);
                if !verdict.is_healthy() && successes >= check.healthy_threshold {
                    verdict.healthy.store(true, Ordering::Relaxed);
                    info!(%upstream, "upstream healthy again");
                }
            }
            Err(why) => {
                successes = 0;
                failures = failures.saturating_add(1);
                if verdict.is_healthy() && failures >= check.unhealthy_threshold {
                    verdict.healthy.store(false, Ordering::Relaxed);
                    warn!(%upstream, reason = %why, failures, "upstream unhealthy; skipped until it recovers");
                }
            }
        }
    }
}

/// One probe: a connection, and for HTTP a request whose answer has the
/// expected status.
async fn probe(endpoint: &Endpoint, check: &HealthCheck) -> Result<(), String> {
    let upstream = &endpoint.upstream;
    let tcp = connect(upstream, check.timeout)
        .await
        .map_err(|e| e.to_string())?;
    let Probe::Http { path, status } = &check.probe else {
        return Ok(());
    };
    let stream = match &endpoint.tls {
        None => crate::stream::Stream::Tcp(tcp),
        Some(connector) => {
            let http1 = endpoint.speaks != Speaks::Http2;
            connector
                .handshake(tcp, upstream, http1)
                .await
                .map_err(|e| e.to_string())?
                .0
        }
    };
    // h2c with prior knowledge, or TLS whose ALPN offers only h2; where the
    // upstream may choose, HTTP/1.1 was asked for.
    let h2 = endpoint.speaks == Speaks::Http2;
    let mut request = Request::get(path.as_str())
        .header(header::USER_AGENT, "portcullis-health-check")
        .body(RequestBody::empty())
        .map_err(|e| e.to_string())?;
    let io = TokioIo::new(stream);
    let answer = if h2 {
        *request.uri_mut() = format!("http://{}{}", upstream.authority(), path)
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(request).await
    } else {
        request.headers_mut().insert(
            header::HOST,
            http::HeaderValue::try_from(upstream.authority()).map_err(|e| e.to_string())?,
        );
        request
            .headers_mut()
            .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(request).await
    };
    let got = answer.map_err(|e| e.to_string())?.status().as_u16();
    if got == *status {
        Ok(())
    } else {
        Err(format!("status {got}, expected {status}"))
    }
}
