//! The ingress: a client's `CONNECT host:port` goes, by the first rule
//! whose expression matches the host, to a peer reached over mutual TLS;
//! the `CONNECT` is sent again inside, and from the peer's 200 on bytes
//! move both ways untouched.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt as _;
use tokio::time::Instant;
use tracing::debug;

use crate::bridge::connect::{self, ConnectTarget};
use crate::bridge::{Opening, failed, read_connect, tunnel};
use crate::config::{BridgeIngress, BridgeRule, ProxyConfig};
use crate::error::{Error, ErrorKind};
use crate::http1::Prefixed;
use crate::state::Shared;
use crate::stream::Stream;
use crate::upstream::{self, Connector};

/// Serves one client connection of an ingress listener.
pub(crate) async fn serve(
    mut client: Stream,
    peer: SocketAddr,
    config: &ProxyConfig,
    shared: &Shared,
) {
    let Some(ingress) = &config.bridge_ingress else {
        return;
    };
    let side = ("ingress", peer, Instant::now());
    let count = (&shared.ingress_tunnels, ingress.limits.max_tunnels);
    let Some(Opening {
        target,
        early,
        outcome,
        _slot,
    }) = read_connect(&mut client, side, config, count, shared).await
    else {
        return;
    };
    if !ingress.admits(peer.ip()) {
        let error = Error::new(ErrorKind::Forbidden)
            .with_context("the client's address may not use the bridge");
        return failed(&mut client, outcome, &error, shared).await;
    }
    let Some(rule) = ingress.rule_for(&target.host) else {
        let error =
            Error::new(ErrorKind::Forbidden).with_context("no bridge rule matches the target");
        return failed(&mut client, outcome, &error, shared).await;
    };
    let outcome = outcome.via(rule.peer.to_string());
    let (to_peer, status, rest) = match open(rule, ingress, &target).await {
        Ok(opened) => opened,
        Err(error) => return failed(&mut client, outcome, &error, shared).await,
    };
    if !status.is_success() {
        // The peer's refusal, relayed: its status, our words.
        let outcome = outcome.status(status);
        debug!(%peer, %target, %status, "the bridge peer refused the CONNECT");
        connect::answer(&mut client, status, "answered by the bridge peer").await;
        return outcome.log("refused by peer");
    }
    if client.write_all(connect::ESTABLISHED).await.is_err() {
        return outcome.log("client gone");
    }
    let client = Prefixed::new(client, early);
    let to_peer = Prefixed::new(to_peer, rest);
    tunnel(client, to_peer, ingress.limits.idle, outcome, shared).await;
}

/// Connects to the rule's peer, runs the TLS handshake, sends the
/// `CONNECT` and reads the answer: the session, the status, and the bytes
/// that followed the answer.
async fn open(
    rule: &BridgeRule,
    ingress: &BridgeIngress,
    target: &ConnectTarget,
) -> Result<(Stream, http::StatusCode, bytes::BytesMut), Error> {
    let Some(tls) = rule.peer.compiled_tls() else {
        return Err(Error::new(ErrorKind::Internal).with_context("a bridge peer without TLS"));
    };
    let tcp = upstream::connect(&rule.peer, ingress.limits.connect).await?;
    let connector = Connector::tunnel(tls, rule.alpn);
    let (mut stream, _info) = connector.handshake(tcp, &rule.peer, true).await?;
    let deadline = Instant::now() + ingress.limits.answer;
    let request = connect::request(target);
    let sent = tokio::time::timeout_at(deadline, stream.write_all(&request)).await;
    match sent {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(Error::new(ErrorKind::UpstreamProtocol)
                .with_context(format!("{}: sending the CONNECT", rule.peer))
                .with_source(e));
        }
        Err(_) => {
            return Err(Error::new(ErrorKind::UpstreamTimeout)
                .with_context(format!("{}: sending the CONNECT", rule.peer)));
        }
    }
    let (status, rest) =
        connect::read_answer(&mut stream, deadline, &rule.peer.to_string()).await?;
    Ok((stream, status, rest))
}
