//! proxy-lib's integration tests in one binary, each module a subject: the
//! engine started in-process on 127.0.0.1 against real origins, clients and
//! TLS handshakes (`support`, and `test-support` shared with `proxy-bin`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod admin;
mod balancing;
mod bridge;
mod certificate_source;
mod client_auth;
mod client_h1;
mod forwarding;
mod grpc;
mod h3;
mod h3_early_data;
mod hostile;
mod integrity;
mod layer4;
mod lifecycle;
mod limits;
mod parking;
mod routing;
mod static_files;
mod tickets;
mod timeouts;
mod tls;
mod tls_streams;
mod upgrade;
mod upstream_h1;
mod upstream_tls;
