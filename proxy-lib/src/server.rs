//! The accepting side: TCP and QUIC listeners, each connection's TLS
//! handshake and protocol, HTTP/1.1 serving and the idle connections parked
//! between requests, under [`Proxy`].

mod admin;
mod connection;
mod h1;
mod handshake;
mod kind;
mod listener;
mod parking;
mod passthrough;
mod proxy;
mod quic;

pub use kind::ListenerKind;
pub use proxy::{Applied, Proxy};
