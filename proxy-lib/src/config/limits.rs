//! Limits and timeouts, each with a named default.

use std::time::Duration;

/// Default for [`Limits::max_clients`].
pub const DEFAULT_MAX_CLIENTS: usize = 512;
/// Default for [`Limits::request_max_body_size`]: 256 MiB, as rpxy.
pub const DEFAULT_REQUEST_MAX_BODY_SIZE: u64 = 256 << 20;
/// Default for [`Limits::request_buffer_memory`].
pub const DEFAULT_REQUEST_BUFFER_MEMORY: usize = 64 * 1024;
/// Default for [`Limits::request_buffer_disk`].
pub const DEFAULT_REQUEST_BUFFER_DISK: u64 = 1 << 30;
/// Default for [`Limits::max_concurrent_streams`] (per HTTP/2 connection).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Default for [`Limits::max_header_size`]: request line plus headers.
pub const DEFAULT_MAX_HEADER_SIZE: usize = 64 * 1024;
/// Default for [`Limits::max_headers`].
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default for [`Limits::upstream_max_idle`].
pub const DEFAULT_UPSTREAM_MAX_IDLE: usize = 64;

/// Sizes and counts the proxy enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Client connections served at once, over all listeners; one more is
    /// answered 503 and closed.
    pub max_clients: usize,
    /// Client connections from one address at once (TCP, TLS and QUIC
    /// together); one more is refused like one over `max_clients`. The
    /// address is the immediate peer's. `None` (the default): no limit.
    pub max_clients_per_ip: Option<usize>,
    /// Concurrent streams per HTTP/2 client connection.
    pub max_concurrent_streams: u32,
    /// Largest request body in bytes (413 beyond); `None` for no limit.
    /// Default: [`DEFAULT_REQUEST_MAX_BODY_SIZE`].
    pub request_max_body_size: Option<u64>,
    /// Bytes of a buffered request body kept in memory; the rest goes to a
    /// temporary file. Default: [`DEFAULT_REQUEST_BUFFER_MEMORY`].
    pub request_buffer_memory: usize,
    /// Bytes of buffered request bodies on disk at once, all requests
    /// together; a body that would pass it streams the rest of itself
    /// upstream instead. Default: [`DEFAULT_REQUEST_BUFFER_DISK`].
    pub request_buffer_disk: u64,
    /// Where buffered request bodies are written: files unlinked as soon
    /// as they are created, so nothing is left behind. `None` (the
    /// default): the system's temporary directory.
    pub request_buffer_dir: Option<std::path::PathBuf>,
    /// Largest request head in bytes (431 beyond).
    pub max_header_size: usize,
    /// Most header fields in a request (431 beyond).
    pub max_headers: usize,
    /// Idle keep-alive connections kept per upstream; while more requests
    /// than that were in flight at once in the last second or two, as many
    /// as were. 0 keeps none.
    pub upstream_max_idle: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_clients: DEFAULT_MAX_CLIENTS,
            max_clients_per_ip: None,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            request_max_body_size: Some(DEFAULT_REQUEST_MAX_BODY_SIZE),
            request_buffer_memory: DEFAULT_REQUEST_BUFFER_MEMORY,
            request_buffer_disk: DEFAULT_REQUEST_BUFFER_DISK,
            request_buffer_dir: None,
            max_header_size: DEFAULT_MAX_HEADER_SIZE,
            max_headers: DEFAULT_MAX_HEADERS,
            upstream_max_idle: DEFAULT_UPSTREAM_MAX_IDLE,
        }
    }
}

/// Default for [`Timeouts::connect`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for [`Timeouts::upstream_response`].
pub const DEFAULT_UPSTREAM_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for [`Timeouts::client_header`].
pub const DEFAULT_CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`Timeouts::client_body`].
pub const DEFAULT_CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for [`Timeouts::client_idle`].
pub const DEFAULT_CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// Default for [`Timeouts::upstream_idle`].
pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`Timeouts::tunnel_idle`].
pub const DEFAULT_TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default for [`Timeouts::upstream_down`].
pub const DEFAULT_UPSTREAM_DOWN: Duration = Duration::from_secs(10);
/// Default for [`Timeouts::tls_handshake`].
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`Timeouts::shutdown`].
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How long the proxy waits for each party.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// Opening a TCP connection to an upstream (504 when exceeded, and the
    /// next upstream is tried).
    pub connect: Duration,
    /// From the end of the request body to the upstream's response head (504).
    pub upstream_response: Duration,
    /// From the first byte of a request head to its end; the connection is
    /// closed when exceeded (slowloris).
    pub client_header: Duration,
    /// Between two reads of a request body (408 when exceeded).
    pub client_body: Duration,
    /// An idle client keep-alive connection is closed after this.
    pub client_idle: Duration,
    /// An idle pooled upstream connection is dropped after this.
    pub upstream_idle: Duration,
    /// A tunnel (WebSocket, other upgrades) with no traffic either way is
    /// closed after this.
    pub tunnel_idle: Duration,
    /// How long an upstream that refused a connection is skipped.
    pub upstream_down: Duration,
    /// A client's TLS handshake, from the connection's accept to its end.
    pub tls_handshake: Duration,
    /// On shutdown, how long in-flight requests may take to finish.
    pub shutdown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: DEFAULT_CONNECT_TIMEOUT,
            upstream_response: DEFAULT_UPSTREAM_RESPONSE_TIMEOUT,
            client_header: DEFAULT_CLIENT_HEADER_TIMEOUT,
            client_body: DEFAULT_CLIENT_BODY_TIMEOUT,
            client_idle: DEFAULT_CLIENT_IDLE_TIMEOUT,
            upstream_idle: DEFAULT_UPSTREAM_IDLE_TIMEOUT,
            tunnel_idle: DEFAULT_TUNNEL_IDLE_TIMEOUT,
            upstream_down: DEFAULT_UPSTREAM_DOWN,
            tls_handshake: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            shutdown: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}
