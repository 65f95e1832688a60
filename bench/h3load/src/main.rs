//! `h3load ADDR SNI PATH CONNECTIONS STREAMS SECONDS`: GET `PATH` over
//! HTTP/3 from CONNECTIONS connections with STREAMS requests in flight on
//! each, for SECONDS, then print `requests N errors E seconds S`. The
//! server's certificate is not verified (a benchmark tool for 127.0.0.1).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: h3load ADDR SNI PATH CONNECTIONS STREAMS SECONDS");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[1].parse().expect("ADDR");
    let sni = args[2].clone();
    let path = args[3].clone();
    let connections: usize = args[4].parse().expect("CONNECTIONS");
    let streams: usize = args[5].parse().expect("STREAMS");
    let seconds: u64 = args[6].parse().expect("SECONDS");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(addr, sni, path, connections, streams, seconds));
}

async fn run(
    addr: SocketAddr,
    sni: String,
    path: String,
    connections: usize,
    streams: usize,
    seconds: u64,
) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = QuicClientConfig::try_from(tls).expect("QUIC client config");
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let uri: http::Uri = format!("https://{sni}{path}").parse().expect("URI");
    let mut senders = Vec::new();
    for _ in 0..connections {
        let conn = endpoint
            .connect(addr, &sni)
            .expect("connect")
            .await
            .expect("handshake");
        let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(conn))
            .await
            .expect("h3");
        tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        senders.push(sender);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for sender in &senders {
        for _ in 0..streams {
            let (mut sender, uri) = (sender.clone(), uri.clone());
            let (done, errors) = (done.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let req = http::Request::get(uri.clone()).body(()).expect("request");
                    match get(&mut sender, req).await {
                        Ok(true) => done.fetch_add(1, Ordering::Relaxed),
                        _ => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "requests {} errors {} seconds {elapsed:.3}",
        done.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
}

/// One GET; true when it was answered 200 and read whole.
async fn get(
    sender: &mut h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    req: http::Request<()>,
) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let mut stream = sender.send_request(req).await?;
    stream.finish().await?;
    let response = stream.recv_response().await?;
    while let Some(mut data) = stream.recv_data().await? {
        data.advance(data.remaining());
    }
    Ok(response.status() == http::StatusCode::OK)
}
