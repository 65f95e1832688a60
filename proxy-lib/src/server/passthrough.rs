//! Layer-4 routing on a TLS listener: the ClientHello is peeked at, never
//! consumed, and the server name it carries picks either a layer-4 route,
//! whose backend then receives the connection byte for byte, hello
//! included, or the TLS acceptor of the apps.
//!
//! Order: a route naming the server exactly, then an app serving it, then
//! a route's `*.suffix`, then the default backend. A hello with no name,
//! or bytes that are not a ClientHello, go to the default backend if there
//! is one; else a nameless hello meets the apps' acceptor (which may have
//! a default certificate) and anything else is closed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proxy_certs::Hello;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tracing::debug;

use crate::config::{Layer4, Layer4Backends};
use crate::exchange::ACCESS_LOG_TARGET;
use crate::pressure::Pressure;
use crate::proxy_protocol;
use crate::state::Shared;

/// The most bytes peeked at for a ClientHello: a hello beyond it is not
/// passed (real ones, post-quantum key shares included, are under 4 KiB).
const MAX_HELLO: usize = 16 * 1024 + 5;

/// What a connection on a TLS listener with layer-4 routes becomes.
#[derive(Debug)]
pub(crate) enum Passage<'a> {
    /// Passed whole to these backends.
    Pass(&'a Layer4Backends, Option<String>),
    /// Terminated: the apps' TLS acceptor reads the hello.
    Terminate,
    /// Closed: not TLS, or stalled, and no default backend.
    Refuse(&'static str),
}

/// Peeks at `tcp` until its ClientHello is whole (or is not one), within
/// `timeout`, and decides; `serves` says whether an app holds a
/// certificate for a name.
pub(crate) async fn inspect<'a>(
    tcp: &TcpStream,
    layer4: &'a Layer4,
    serves: impl Fn(&str) -> bool,
    pressure: &Pressure,
) -> Passage<'a> {
    let hello = peek_within(tcp, layer4.inspect_timeout, pressure).await;
    match hello {
        Some(Hello::Complete(Some(name))) => {
            if let Some(backends) = layer4.exact(&name) {
                return Passage::Pass(backends, Some(name));
            }
            if serves(&name) {
                return Passage::Terminate;
            }
            match layer4.wildcard(&name).or(layer4.default.as_ref()) {
                Some(backends) => Passage::Pass(backends, Some(name)),
                // The acceptor refuses it with unrecognized_name.
                None => Passage::Terminate,
            }
        }
        Some(Hello::Complete(None)) => match &layer4.default {
            Some(backends) => Passage::Pass(backends, None),
            None => Passage::Terminate,
        },
        Some(Hello::Malformed) => match &layer4.default {
            Some(backends) => Passage::Pass(backends, None),
            None => Passage::Refuse("not a TLS ClientHello"),
        },
        Some(Hello::Incomplete) => Passage::Refuse("closed before a whole ClientHello"),
        None => Passage::Refuse("no whole ClientHello within the inspection timeout"),
    }
}

/// The ClientHello, within `timeout`; under connection pressure within
/// no longer than a slow head gets (re-reckoned when pressure rises during
/// the wait), so that stalled hellos cannot hold the client slots.
async fn peek_within(tcp: &TcpStream, timeout: Duration, pressure: &Pressure) -> Option<Hello> {
    let since = tokio::time::Instant::now();
    let mut peek = std::pin::pin!(peek_hello(tcp));
    loop {
        let raised = pressure.raised();
        let high = pressure.is_high();
        let deadline = since + pressure.header_timeout(timeout);
        tokio::select! {
            hello = &mut peek => return Some(hello),
            () = tokio::time::sleep_until(deadline) => return None,
            () = raised, if !high => {}
        }
    }
}

/// What the client sent so far, peeked at again as more arrives.
async fn peek_hello(tcp: &TcpStream) -> Hello {
    let mut buf = vec![0u8; MAX_HELLO];
    let mut pause = Duration::from_millis(1);
    let mut seen = 0;
    loop {
        let n = match tcp.peek(&mut buf).await {
            Ok(0) | Err(_) => return Hello::Incomplete,
            Ok(n) => n,
        };
        match proxy_certs::server_name_in_records(&buf[..n]) {
            Hello::Incomplete if n == buf.len() => return Hello::Malformed,
            Hello::Incomplete => {
                // Peeking again at once would see the same bytes: wait,
                // longer while nothing new arrives (a stalled client costs
                // a few wake-ups a second, not a spinning core).
                pause = if n > seen {
                    Duration::from_millis(1)
                } else {
                    (pause * 2).min(Duration::from_millis(50))
                };
                seen = n;
                tokio::time::sleep(pause).await;
            }
            done => return done,
        }
    }
}

/// Connects to the first of `backends` (in this connection's round-robin
/// order) that accepts, sends it the PROXY header it wants, and relays
/// bytes both ways until either side closes, the idle timeout, or the
/// proxy stops. One access-log event when it ends.
pub(crate) async fn pass(
    client: TcpStream,
    peer: SocketAddr,
    sni: Option<String>,
    backends: &Layer4Backends,
    layer4: &Layer4,
    shared: &Shared,
) {
    let started = Instant::now();
    let local = client.local_addr().unwrap_or(peer);
    let mut connected = None;
    for backend in backends.for_connection() {
        let attempt = tokio::time::timeout(
            layer4.connect_timeout,
            TcpStream::connect(&*backend.address),
        )
        .await;
        let mut stream = match attempt {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                debug!(%peer, backend = %backend.address, %error, "layer-4 backend refused; trying the next one");
                continue;
            }
            Err(_) => {
                debug!(%peer, backend = %backend.address, "layer-4 backend timed out; trying the next one");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if let Some(version) = backend.proxy_protocol {
            let header = proxy_protocol::encode(version, peer, local);
            if let Err(error) = stream.write_all(&header).await {
                debug!(%peer, backend = %backend.address, %error, "layer-4 backend closed before the PROXY header");
                continue;
            }
        }
        connected = Some((stream, backend.address.clone()));
        break;
    }
    let Some((upstream, backend)) = connected else {
        if let Some(suppressed) = shared.log_limits.upstream_failed.admit() {
            tracing::warn!(%peer, sni = sni.as_deref().unwrap_or("-"), suppressed, "no layer-4 backend accepted the connection; closed");
        }
        log(peer, sni.as_deref(), "-", (0, 0), started, "no backend");
        return;
    };
    let relayed =
        crate::tunnel::relay(client, upstream, layer4.idle_timeout, &shared.hard_stop).await;
    let (moved, end) = ((relayed.up, relayed.down), relayed.end());
    log(peer, sni.as_deref(), &backend, moved, started, end);
}

/// The access-log event of a passed connection: bytes each way and why
/// it ended.
fn log(
    peer: SocketAddr,
    sni: Option<&str>,
    backend: &str,
    moved: (u64, u64),
    started: Instant,
    end: &str,
) {
    tracing::info!(
        target: ACCESS_LOG_TARGET,
        client = %peer.ip(),
        sni = sni.unwrap_or("-"),
        backend,
        bytes_up = moved.0,
        bytes_down = moved.1,
        duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        end,
        "layer-4 connection"
    );
}
