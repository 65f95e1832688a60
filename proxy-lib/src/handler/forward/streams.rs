//! Which request bodies are streams rather than uploads. Buffering an
//! upload whole before it goes upstream (`request_buffering`, on by
//! default) keeps a slow client from holding an upstream connection; a
//! stream buffered whole never starts, since its messages answer each
//! other. On a route to an HTTP/2 upstream, such requests are forwarded as
//! they arrive, with the route's defaults, as nginx's `grpc_pass`, Caddy
//! and HAProxy do:
//!
//! - gRPC and gRPC-Web calls (`content-type: application/grpc*`);
//! - HTTP/2 and HTTP/3 requests without a `Content-Length`: a client that
//!   knows its body's length says it (browsers do), and one that does not
//!   is streaming.
//!
//! Only there: to a multiplexing upstream a slow stream costs a stream, not
//! a connection. To an HTTP/1.1 upstream every body is buffered, so a
//! client cannot skip the slow-upload protection by calling its upload
//! gRPC (gRPC needs HTTP/2 anyway; gRPC-Web's calls send their request
//! whole). Streams still have the client body timeout between reads and
//! the body size limit.

use http::Version;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;

use crate::config::UpstreamProtocol;

/// Whether the body of `parts`, going to an upstream speaking `upstream`,
/// is forwarded as it arrives even on a route that buffers.
pub(super) fn is_stream(parts: &Parts, upstream: UpstreamProtocol) -> bool {
    upstream == UpstreamProtocol::Http2
        && (is_grpc(parts)
            || (parts.version >= Version::HTTP_2 && !parts.headers.contains_key(CONTENT_LENGTH)))
}

/// `application/grpc`, `application/grpc+proto`, `application/grpc-web`…
fn is_grpc(parts: &Parts) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    parts.headers.get(CONTENT_TYPE).is_some_and(|value| {
        let value = value.as_bytes();
        value.len() >= GRPC.len() && value[..GRPC.len()].eq_ignore_ascii_case(GRPC)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parts(version: Version, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::post("/").version(version);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn grpc_calls_stream_on_every_protocol_to_http2_upstreams_only() {
        for content_type in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC+json",
            "application/grpc-web-text",
        ] {
            for version in [Version::HTTP_11, Version::HTTP_2, Version::HTTP_3] {
                let p = parts(
                    version,
                    &[("content-type", content_type), ("content-length", "5")],
                );
                let what = format!("{content_type} {version:?}");
                assert!(is_stream(&p, UpstreamProtocol::Http2), "{what}");
                assert!(
                    !is_stream(&p, UpstreamProtocol::Http1),
                    "{what} to HTTP/1.1"
                );
            }
        }
    }

    #[test]
    fn only_lengthless_multiplexed_requests_to_http2_upstreams_stream() {
        use UpstreamProtocol::{Http1, Http2};
        let json = ("content-type", "application/json");
        let sized = ("content-length", "5");
        assert!(is_stream(&parts(Version::HTTP_2, &[json]), Http2));
        assert!(is_stream(&parts(Version::HTTP_3, &[json]), Http2));
        assert!(!is_stream(&parts(Version::HTTP_2, &[json, sized]), Http2));
        assert!(!is_stream(&parts(Version::HTTP_2, &[json]), Http1));
        assert!(!is_stream(&parts(Version::HTTP_11, &[json]), Http2));
        assert!(!is_stream(
            &parts(Version::HTTP_11, &[("content-type", "application/grp")]),
            Http2
        ));
    }
}
