//! Layer-4 routes on the TLS listener: connections whose ClientHello names
//! a route reach its backend byte for byte (the client sees the backend's
//! certificate), beside apps terminated on the same port; wildcards, the
//! default backend and refusals; a hello split across segments and
//! records; a stalled hello cut at the inspection timeout; PROXY headers;
//! round robin with failover.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use proxy_certs::SniResolver;
use proxy_lib::config::{Layer4, Layer4Backend, Layer4Backends, Layer4Route, Limits, ProxyVersion};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

fn backends(addresses: &[String]) -> Layer4Backends {
    Layer4Backends::new(
        addresses
            .iter()
            .map(|a| Layer4Backend::new(a).unwrap())
            .collect(),
    )
    .unwrap()
}

/// pass.test to `address`, no default.
fn pass_test_to(address: String) -> Layer4 {
    Layer4::new(
        vec![Layer4Route::new(&["pass.test"], backends(&[address])).unwrap()],
        None,
    )
}

/// A proxy terminating app.test (certificate from `ca`) with `layer4` on
/// its TLS listener.
async fn start(ca: &Ca, dir: &std::path::Path, origin: &Origin, layer4: Layer4) -> TestProxy {
    start_with(ca, dir, origin, layer4, Limits::default()).await
}

/// [`start`] with `limits`.
async fn start_with(
    ca: &Ca,
    dir: &std::path::Path,
    origin: &Origin,
    layer4: Layer4,
    limits: Limits,
) -> TestProxy {
    let certs = Arc::new(SniResolver::new(cert_map(ca, dir, &["app.test"])));
    let mut builder = config();
    builder
        .app(app(
            "app",
            &["app.test"],
            vec![route(None, None, to(&[origin]))],
        ))
        .unwrap();
    builder.tls(tls_on_localhost(certs));
    builder.layer4(layer4).limits(limits);
    TestProxy::start(builder.build().unwrap()).await
}

/// A GET over TLS to `name` at `addr`, trusting `root`: the answer's body
/// and the certificate the client saw.
async fn get(
    addr: SocketAddr,
    name: &str,
    root: &Ca,
) -> (String, rustls::pki_types::CertificateDer<'static>) {
    let client = client_config(&[&root.der], None, &[b"http/1.1"]);
    let stream = tls_connect(addr, name, client).await.unwrap();
    let leaf = peer_leaf(&stream);
    let answer = H1::over(stream).await.get(name, "/").await;
    assert_eq!(answer.status, 200, "{name}");
    (answer.text(), leaf)
}

/// A backend that keeps every byte each connection sends it (and sends
/// nothing back).
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

impl Recorder {
    async fn start() -> (Self, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let recorder = Self::default();
        let kept = recorder.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let index = {
                        let mut all = kept.0.lock().unwrap();
                        all.push(Vec::new());
                        all.len() - 1
                    };
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = tcp.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        kept.0.lock().unwrap()[index].extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        (recorder, addr)
    }

    fn received(&self) -> Vec<Vec<u8>> {
        self.0.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn routed_names_reach_their_backends_beside_terminated_apps_on_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Proxy CA");
    let backend_ca = Ca::root("Backend CA");
    let pass_leaf = backend_ca.server(&["pass.test"]);
    let one = TlsOrigin::start("one", TlsOriginOptions::new(pass_leaf.clone())).await;
    let two = TlsOrigin::start(
        "two",
        TlsOriginOptions::new(backend_ca.server(&["x.wild.test"])),
    )
    .await;
    let origin = Origin::start("app").await;
    let layer4 = Layer4::new(
        vec![
            Layer4Route::new(&["pass.test"], backends(&[one.location()])).unwrap(),
            Layer4Route::new(&["*.wild.test"], backends(&[two.location()])).unwrap(),
        ],
        None,
    );
    let proxy = start(&ca, dir.path(), &origin, layer4).await;
    let port = proxy.tls_addr.unwrap();

    // Passed: the backends' own certificates, the backends' answers.
    let (body, leaf) = get(port, "pass.test", &backend_ca).await;
    assert_eq!(body, "one");
    assert_eq!(leaf, pass_leaf.chain[0]);
    let (body, _) = get(port, "x.wild.test", &backend_ca).await;
    assert_eq!(body, "two");
    assert_eq!(one.handshakes()[0].sni.as_deref(), Some("pass.test"));
    // Terminated: the proxy's certificate, the app's origin.
    let (body, _) = get(port, "app.test", &ca).await;
    assert_eq!(body, "app");
    // One label only below a wildcard; unknown names are refused as the
    // apps' acceptor refuses them.
    for name in ["a.b.wild.test", "wild.test", "other.test"] {
        let client = client_config(&[&backend_ca.der], None, &[b"http/1.1"]);
        assert_alert(
            tls_connect(port, name, client).await,
            rustls::AlertDescription::UnrecognisedName,
        );
    }
}

#[tokio::test]
async fn a_default_backend_takes_unknown_and_nameless_hellos_and_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Proxy CA");
    let backend_ca = Ca::root("Backend CA");
    let fallback = backend_ca.server(&["other.test", "127.0.0.1"]);
    let default = TlsOrigin::start("default", TlsOriginOptions::new(fallback)).await;
    let origin = Origin::start("app").await;
    let layer4 = Layer4::new(Vec::new(), Some(backends(&[default.location()])));
    let proxy = start(&ca, dir.path(), &origin, layer4).await;
    let port = proxy.tls_addr.unwrap();

    assert_eq!(get(port, "other.test", &backend_ca).await.0, "default");
    // An IP address: rustls sends no server name.
    assert_eq!(get(port, "127.0.0.1", &backend_ca).await.0, "default");
    assert_eq!(get(port, "app.test", &ca).await.0, "app");
    let names: Vec<_> = default.handshakes().into_iter().map(|h| h.sni).collect();
    assert_eq!(names, [Some("other.test".to_owned()), None]);

    // Bytes that are not TLS go to the default backend too.
    let (recorder, address) = Recorder::start().await;
    let layer4 = Layer4::new(Vec::new(), Some(backends(&[address])));
    let proxy = start(&ca, dir.path(), &origin, layer4).await;
    let mut tcp = TcpStream::connect(proxy.tls_addr.unwrap()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    eventually("the request reached the default backend", || async {
        recorder.received() == [b"GET / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec()]
    })
    .await;
}

#[tokio::test]
async fn without_a_default_other_bytes_and_stalled_hellos_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Proxy CA");
    let origin = Origin::start("app").await;
    let (recorder, address) = Recorder::start().await;
    let mut layer4 = pass_test_to(address);
    layer4.inspect_timeout(Duration::from_millis(300));
    let proxy = start(&ca, dir.path(), &origin, layer4).await;
    let port = proxy.tls_addr.unwrap();

    let mut tcp = TcpStream::connect(port).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");

    // Half a hello, then nothing: closed at the inspection timeout.
    let hello = client_hello("pass.test", None);
    let mut tcp = TcpStream::connect(port).await.unwrap();
    tcp.write_all(&hello[..hello.len() / 2]).await.unwrap();
    let started = std::time::Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
        .await
        .expect("closed within the timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(recorder.received().is_empty());
}

#[tokio::test]
async fn a_hello_in_pieces_and_records_is_passed_byte_for_byte_with_a_proxy_header() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Proxy CA");
    let origin = Origin::start("app").await;
    let (plain, plain_address) = Recorder::start().await;
    let (headed, headed_address) = Recorder::start().await;
    let layer4 = Layer4::new(
        vec![
            Layer4Route::new(&["pass.test"], backends(&[plain_address])).unwrap(),
            Layer4Route::new(
                &["headed.test"],
                Layer4Backends::new(vec![
                    Layer4Backend::new(&headed_address)
                        .unwrap()
                        .proxy_protocol(ProxyVersion::V2),
                ])
                .unwrap(),
            )
            .unwrap(),
        ],
        None,
    );
    let proxy = start(&ca, dir.path(), &origin, layer4).await;
    let port = proxy.tls_addr.unwrap();

    // Three TCP writes apart in time, over records of at most 64 bytes.
    let hello = client_hello("pass.test", Some(64));
    let mut records = 0;
    let mut at = 0;
    while at < hello.len() {
        at += 5 + usize::from(u16::from_be_bytes([hello[at + 3], hello[at + 4]]));
        records += 1;
    }
    assert!(records >= 3, "{records} records");
    let mut tcp = TcpStream::connect(port).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let third = hello.len() / 3;
    for piece in [
        &hello[..third],
        &hello[third..2 * third],
        &hello[2 * third..],
    ] {
        tcp.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tcp.write_all(b"after the hello").await.unwrap();
    let mut want = hello.clone();
    want.extend(b"after the hello");
    eventually("the backend received every byte", || async {
        plain.received() == [want.clone()]
    })
    .await;

    // With a PROXY v2 header naming the client first.
    let hello = client_hello("headed.test", None);
    let mut tcp = TcpStream::connect(port).await.unwrap();
    let client = tcp.local_addr().unwrap();
    tcp.write_all(&hello).await.unwrap();
    eventually("the backend received the header and the hello", || async {
        headed
            .received()
            .first()
            .is_some_and(|got| got.len() == 28 + hello.len())
    })
    .await;
    let got = headed.received().remove(0);
    assert_eq!(&got[..12], b"\r\n\r\n\0\r\nQUIT\n");
    assert_eq!(got[12], 0x21, "version 2, PROXY");
    assert_eq!(got[13], 0x11, "TCP over IPv4");
    assert_eq!(&got[16..20], &[127, 0, 0, 1]);
    assert_eq!(u16::from_be_bytes([got[24], got[25]]), client.port());
    assert_eq!(u16::from_be_bytes([got[26], got[27]]), port.port());
    assert_eq!(&got[28..], &hello[..]);
}

#[tokio::test]
async fn connections_take_turns_and_skip_a_dead_backend() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Proxy CA");
    let backend_ca = Ca::root("Backend CA");
    let one = TlsOrigin::start(
        "one",
        TlsOriginOptions::new(backend_ca.server(&["pass.test"])),
    )
    .await;
    let two = TlsOrigin::start(
        "two",
        TlsOriginOptions::new(backend_ca.server(&["pass.test"])),
    )
    .await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let origin = Origin::start("app").await;
    let layer4 = Layer4::new(
        vec![
            Layer4Route::new(
                &["pass.test"],
                backends(&[dead, one.location(), two.location()]),
            )
            .unwrap(),
        ],
        None,
    );
    let proxy = start(&ca, dir.path(), &origin, layer4).await;
    let mut bodies = Vec::new();
    for _ in 0..6 {
        bodies.push(
            get(proxy.tls_addr.unwrap(), "pass.test", &backend_ca)
                .await
                .0,
        );
    }
    assert_eq!(bodies, ["one", "one", "two", "one", "one", "two"]);
}

#[tokio::test]
async fn passed_connections_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Proxy CA");
    let origin = Origin::start("app").await;
    let (recorder, address) = Recorder::start().await;
    let mut layer4 = pass_test_to(address);
    layer4.max_connections(1);
    let proxy = start(&ca, dir.path(), &origin, layer4).await;
    let port = proxy.tls_addr.unwrap();
    let hello = client_hello("pass.test", None);
    let mut first = TcpStream::connect(port).await.unwrap();
    first.write_all(&hello).await.unwrap();
    eventually("the first is passed", || async {
        recorder.received().len() == 1
    })
    .await;
    // The second is closed unread while the first holds the only place.
    let mut second = TcpStream::connect(port).await.unwrap();
    second.write_all(&hello).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
    assert_eq!(recorder.received().len(), 1);
    // Once the first ends, its place is free.
    drop(first);
    eventually("a third is passed", || async {
        let mut third = TcpStream::connect(port).await.unwrap();
        third.write_all(&hello).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        recorder.received().len() >= 2
    })
    .await;
}

#[test]
fn a_name_is_either_passed_or_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Proxy CA");
    let certs = Arc::new(SniResolver::new(cert_map(&ca, dir.path(), &["app.test"])));
    let mut builder = config();
    builder
        .app(app(
            "app",
            &["app.test"],
            vec![route(None, None, to_nowhere())],
        ))
        .unwrap();
    builder.tls(tls_on_localhost(certs));
    builder.layer4(Layer4::new(
        vec![Layer4Route::new(&["APP.test."], backends(&["127.0.0.1:9".into()])).unwrap()],
        None,
    ));
    let error = builder.build().unwrap_err().to_string();
    assert!(
        error.contains("app.test is both a layer-4 route and a server name of app \"app\""),
        "{error}"
    );

    for bad in ["", "10.0.0.5", "host:0", ":443", "host:port"] {
        assert!(Layer4Backend::new(bad).is_err(), "{bad:?}");
    }
    assert!(Layer4Route::new(&[], backends(&["127.0.0.1:9".into()])).is_err());
    assert!(Layer4Route::new(&["bad name"], backends(&["127.0.0.1:9".into()])).is_err());
    assert!(Layer4Backends::new(Vec::new()).is_err());
}

fn to_nowhere() -> proxy_lib::config::RouteTarget {
    upstreams(
        &["127.0.0.1:9".to_owned()],
        proxy_lib::config::LoadBalance::RoundRobin,
    )
}

#[tokio::test]
async fn under_pressure_stalled_hellos_are_cut_short_and_new_clients_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Proxy CA");
    let origin = Origin::start("app").await;
    let (_recorder, address) = Recorder::start().await;
    let mut layer4 = pass_test_to(address);
    layer4.inspect_timeout(Duration::from_secs(30));
    let mut limits = Limits::default();
    limits.max_clients = 10;
    let proxy = start_with(&ca, dir.path(), &origin, layer4, limits).await;
    let port = proxy.tls_addr.unwrap();

    // Half a hello on every slot: before pressure, each had 30 s.
    let hello = client_hello("pass.test", None);
    let mut stalled = Vec::new();
    for _ in 0..10 {
        let mut tcp = TcpStream::connect(port).await.unwrap();
        tcp.write_all(&hello[..hello.len() / 2]).await.unwrap();
        stalled.push(tcp);
    }
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    for tcp in &mut stalled {
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "closed under pressure");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let (text, _) = get(port, "app.test", &ca).await;
    assert_eq!(text, "app");
}
