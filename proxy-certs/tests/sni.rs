//! The SNI resolver over real TLS handshakes on 127.0.0.1: exact names,
//! one-label wildcards, the default certificate, unknown names refused, and
//! a replaced map reaching new handshakes; sources put together, each
//! owning its names.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use proxy_certs::{CertMap, CertificateSource, SniResolver, SourceMap};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use test_support::{Ca, provider, root_store};

/// A leaf for `names` issued by `ca`, as rustls serves it, and its DER.
fn leaf(ca: &Ca, names: &[&str]) -> (Arc<CertifiedKey>, CertificateDer<'static>) {
    let leaf = ca.server(names);
    (leaf.certified(), leaf.chain[0].clone())
}

/// Serves TLS handshakes with `resolver` until the test ends.
fn server(resolver: Arc<dyn ResolvesServerCert>) -> std::net::SocketAddr {
    let config = Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(resolver),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let config = config.clone();
            std::thread::spawn(move || {
                let mut conn = ServerConnection::new(config).unwrap();
                while conn.is_handshaking() {
                    if conn.complete_io(&mut stream).is_err() {
                        return;
                    }
                }
                let _ = conn.writer().write_all(b"ok");
                let _ = conn.complete_io(&mut stream);
            });
        }
    });
    addr
}

/// Handshakes with `sni` and returns the certificate the server sent.
fn handshake(
    addr: std::net::SocketAddr,
    ca: &Ca,
    sni: &str,
) -> Result<CertificateDer<'static>, rustls::Error> {
    let roots = root_store(&[&ca.der]);
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let mut conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut stream)
            .map_err(|e| match e.into_inner() {
                Some(inner) => match inner.downcast::<rustls::Error>() {
                    Ok(tls) => *tls,
                    Err(other) => rustls::Error::General(other.to_string()),
                },
                None => rustls::Error::General("i/o".into()),
            })?;
    }
    let mut reply = [0u8; 2];
    let mut tls = rustls::Stream::new(&mut conn, &mut stream);
    tls.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"ok");
    Ok(conn.peer_certificates().unwrap()[0].clone())
}

#[test]
fn names_choose_certificates_exact_then_wildcard() {
    let ca = Ca::root("Root");
    let (a, a_der) = leaf(&ca, &["a.test"]);
    let (star, star_der) = leaf(&ca, &["*.b.test"]);
    let (exact_b, exact_b_der) = leaf(&ca, &["x.b.test"]);
    let mut map = CertMap::new();
    map.insert("a.test", a);
    map.insert("*.b.test", star);
    map.insert("X.B.test.", exact_b);
    let addr = server(Arc::new(SniResolver::new(map)));

    assert_eq!(handshake(addr, &ca, "a.test").unwrap(), a_der);
    assert_eq!(handshake(addr, &ca, "A.TEST").unwrap(), a_der);
    assert_eq!(handshake(addr, &ca, "y.b.test").unwrap(), star_der);
    assert_eq!(
        handshake(addr, &ca, "x.b.test").unwrap(),
        exact_b_der,
        "exact beats wildcard"
    );
    // A wildcard covers one label, and not the bare domain; the server
    // refuses (an alert), rather than the client finding a wrong name.
    for name in ["z.y.b.test", "b.test", "unknown.test"] {
        let error = handshake(addr, &ca, name).unwrap_err();
        assert!(
            matches!(error, rustls::Error::AlertReceived(_)),
            "{name}: {error:?}"
        );
    }
}

#[test]
fn the_default_answers_unknown_names_and_a_replaced_map_reaches_new_handshakes() {
    let ca = Ca::root("Root");
    let (old, old_der) = leaf(&ca, &["a.test"]);
    let mut map = CertMap::new();
    map.insert("a.test", old);
    let resolver = Arc::new(SniResolver::new(map));
    let addr = server(resolver.clone());
    assert_eq!(handshake(addr, &ca, "a.test").unwrap(), old_der);

    let (new, new_der) = leaf(&ca, &["a.test", "other.test"]);
    let mut map = CertMap::new();
    map.insert("a.test", new.clone());
    map.set_default(new);
    resolver.replace(map);
    assert_eq!(handshake(addr, &ca, "a.test").unwrap(), new_der);
    assert_eq!(
        handshake(addr, &ca, "other.test").unwrap(),
        new_der,
        "served by default"
    );
    assert!(!resolver.current().is_empty());
}

#[test]
fn a_source_map_gives_each_source_its_own_names_even_before_it_has_a_certificate() {
    let ca = Ca::root("Root");
    let (fallback_key, fallback_der) = leaf(&ca, &["files.test", "elsewhere.test"]);
    let (owned_key, owned_der) = leaf(&ca, &["owned.test"]);
    let mut files = CertMap::new();
    files.insert("files.test", fallback_key.clone());
    // A default certificate would answer every name: not the owned ones.
    files.set_default(fallback_key);
    let owned = Arc::new(SniResolver::new(CertMap::new()));
    let mut map = SourceMap::new(Arc::new(SniResolver::new(files)));
    map.add(["Owned.test."], owned.clone());
    let map = Arc::new(map);

    assert!(!map.serves(Some("owned.test")));
    assert!(!map.serves(Some("OWNED.TEST.")));
    assert!(map.serves(Some("files.test")));
    assert!(map.serves(Some("elsewhere.test")));
    assert!(map.serves(None));
    let addr = server(map.clone());
    assert!(handshake(addr, &ca, "owned.test").is_err());
    assert_eq!(
        handshake(addr, &ca, "elsewhere.test").unwrap(),
        fallback_der
    );

    let mut certs = CertMap::new();
    certs.insert("owned.test", owned_key);
    owned.replace(certs);
    assert!(map.serves(Some("owned.test")));
    assert_eq!(handshake(addr, &ca, "owned.test").unwrap(), owned_der);
    assert_eq!(handshake(addr, &ca, "files.test").unwrap(), fallback_der);
}

#[test]
fn sources_report_each_certificate_they_serve_once_with_its_expiry() {
    let ca = Ca::root("Root");
    let (shared, _) = leaf(&ca, &["a.test", "www.a.test"]);
    let (wild, _) = leaf(&ca, &["*.b.test"]);
    let mut map = CertMap::new();
    map.insert("a.test", shared.clone());
    map.insert("www.a.test", shared.clone());
    map.insert("*.b.test", wild);
    map.set_default(shared);
    let files = Arc::new(SniResolver::new(map));
    let (other, _) = leaf(&ca, &["c.test"]);
    let mut map = CertMap::new();
    map.insert("c.test", other);
    let owned: Arc<dyn CertificateSource> = Arc::new(SniResolver::new(map));
    let mut sources = SourceMap::new(files.clone());
    // One source owning two names is asked once.
    sources.add(["c.test", "d.test"], owned);

    let now = std::time::SystemTime::now();
    let expiries = sources.expiries();
    let names: Vec<&str> = expiries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["*.b.test", "a.test", "c.test"]);
    assert!(expiries.iter().all(|e| e.not_after > now));
    assert_eq!(
        files.expiries().len(),
        2,
        "a key under three names is one certificate"
    );
}
