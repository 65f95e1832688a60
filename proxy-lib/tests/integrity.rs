//! What reaches an upstream is what the proxy checked: an HTTP/3 body that
//! disagrees with its `Content-Length` resets the stream and never reaches
//! a shared HTTP/1.1 upstream as announced (request smuggling), with and
//! without request buffering, with and without trailers; framing fields
//! are the proxy's own; and no client, of any app, writes the identity an
//! mTLS app forwards, in the head, in its underscore spelling or in
//! trailers.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use proxy_certs::{ClientAuth, SniResolver};
use proxy_lib::config::{AppTls, Http3, LoadBalance, RouteTarget};

use crate::support::*;

const IDENTITY: &str = "x-client-cert";
/// A whole second request, as an HTTP/1.1 parser would read it after the
/// first one's announced five bytes.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: mtls.test\r\nX-Client-Cert: forged\r\n\r\n";

/// `pub.test` (anyone) and `mtls.test` (client certificates, identity
/// forwarded) share one HTTP/1.1 origin, so its pooled connections carry
/// both apps' requests.
struct Shared {
    _dir: tempfile::TempDir,
    ca: Ca,
    clients: Ca,
    origin: Origin,
    proxy: TestProxy,
}

async fn shared_origin(buffering: bool) -> Shared {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let clients = Ca::root("Clients");
    let bundle = clients.write(dir.path(), "clients.pem");
    let names = ["pub.test", "mtls.test"];
    let certs = Arc::new(SniResolver::new(cert_map(&ca, dir.path(), &names)));
    let origin = Origin::start("origin").await;
    let mut builder = config();
    for (name, host, mtls) in [("pub", "pub.test", false), ("mtls", "mtls.test", true)] {
        let mut group = group(&[origin.location()], LoadBalance::None);
        group.request_buffering(buffering);
        let mut app = app(
            name,
            &[host],
            vec![route(None, None, RouteTarget::Upstreams(group))],
        );
        if mtls {
            let policy = ClientAuth::load(&bundle, vec![], provider()).unwrap();
            let mut tls = AppTls::new();
            tls.client_auth(Arc::new(policy))
                .client_identity_header(HeaderName::from_static(IDENTITY));
            app.tls(tls);
        }
        builder.app(app).unwrap();
    }
    let mut tls = tls_on_localhost(certs);
    tls.http3(Http3::new());
    builder.tls(tls);
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    Shared {
        _dir: dir,
        ca,
        clients,
        origin,
        proxy,
    }
}

/// One HTTP/3 request sent as given: `lengths` as its `Content-Length`
/// fields, `body` in one DATA frame, then `trailers` if any. The status,
/// or the error of a stream the proxy reset.
async fn h3_exchange(
    h3: &H3,
    lengths: &[&str],
    body: &str,
    trailers: bool,
) -> Result<StatusCode, String> {
    let mut req = Request::post("https://pub.test/a").body(()).unwrap();
    for length in lengths {
        req.headers_mut()
            .append("content-length", HeaderValue::from_str(length).unwrap());
    }
    let mut stream = h3
        .sender()
        .send_request(req)
        .await
        .map_err(|e| e.to_string())?;
    let sent = async {
        if !body.is_empty() {
            stream.send_data(Bytes::from(body.to_owned())).await?;
        }
        if trailers {
            let mut fields = HeaderMap::new();
            fields.insert("x-sum", HeaderValue::from_static("1"));
            stream.send_trailers(fields).await?;
        }
        stream.finish().await
    };
    // A reset may come while the request is still being sent.
    let _ = sent.await;
    let response = stream.recv_response().await.map_err(|e| e.to_string())?;
    Ok(response.status())
}

fn assert_nothing_smuggled(origin: &Origin, case: &str) {
    let raw = origin.raw();
    assert!(!raw.contains("/smuggled"), "{case}: the origin got {raw:?}");
    for seen in origin.seen() {
        assert_eq!(seen.uri, "/a", "{case}: the origin parsed {seen:?}");
        assert!(!seen.headers.contains_key(IDENTITY), "{case}: {seen:?}");
    }
}

#[tokio::test]
async fn http3_bodies_that_break_their_length_are_reset_and_never_smuggled() {
    let hello_and_more = format!("hello{SMUGGLED}");
    let cases: [(&str, &[&str], &str, bool); 6] = [
        ("longer, trailers", &["5"], &hello_and_more, true),
        ("longer", &["5"], &hello_and_more, false),
        ("shorter", &["500"], "hello", false),
        ("shorter, trailers", &["500"], "hello", true),
        ("not digits", &["+5"], "hello", false),
        ("conflicting", &["5", "6"], "hello", false),
    ];
    for buffering in [true, false] {
        let s = shared_origin(buffering).await;
        let h3 = H3::connect(s.proxy.quic_addr.unwrap(), "pub.test", &[&s.ca.der]).await;
        for (case, lengths, body, trailers) in cases {
            let case = format!("{case}, buffering {buffering}");
            let outcome = h3_exchange(&h3, lengths, body, trailers).await;
            assert!(outcome.is_err(), "{case}: answered {outcome:?}");
            assert_nothing_smuggled(&s.origin, &case);
        }
        // The connection and the origin still serve honest requests.
        for trailers in [false, true] {
            let honest = h3_exchange(&h3, &["5"], "hello", trailers).await;
            assert_eq!(honest, Ok(StatusCode::OK), "buffering {buffering}");
            assert_eq!(s.origin.seen().pop().unwrap().body, "hello");
        }
        let last = s.origin.seen().pop().unwrap();
        let framing = last.headers.get("content-length");
        assert!(framing.is_none_or(|length| length == "5"), "{last:?}");
        let mut chunked = h3.clone();
        let answer = chunked
            .send(h3_request("POST", "pub.test", "/a"), b"unannounced")
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(s.origin.seen().pop().unwrap().body, "unannounced");
        assert_nothing_smuggled(&s.origin, "after");
    }
}

#[tokio::test]
async fn framing_fields_reach_the_upstream_once_and_as_the_proxy_counted() {
    let s = shared_origin(true).await;
    let head = "POST /a HTTP/1.1\r\nHost: pub.test\r\nContent-Length: 5, 5\r\n\
Content-Length: 5\r\nConnection: close\r\n\r\nhello";
    let (answer, _) = raw(s.proxy.addr, head.as_bytes()).await;
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    let raw = s.origin.raw().to_ascii_lowercase();
    assert_eq!(raw.matches("content-length").count(), 1, "{raw}");
    assert!(raw.contains("content-length: 5\r\n"), "{raw}");
}

#[tokio::test]
async fn no_client_of_any_app_writes_the_forwarded_identity() {
    let s = shared_origin(false).await;
    // A public app's client, in the head, in the underscore spelling and in
    // trailers, over HTTP/1.1 and HTTP/3.
    let head = "POST /a HTTP/1.1\r\nHost: pub.test\r\nX-Client-Cert: forged\r\n\
X_Client_Cert: forged\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
5\r\nhello\r\n0\r\nX-Client-Cert: forged\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
    let (answer, _) = raw(s.proxy.addr, head.as_bytes()).await;
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    let h3 = H3::connect(s.proxy.quic_addr.unwrap(), "pub.test", &[&s.ca.der]).await;
    let mut req = h3_request("POST", "pub.test", "/a");
    req.headers_mut()
        .insert(IDENTITY, HeaderValue::from_static("forged"));
    let mut stream = h3.sender().send_request(req).await.unwrap();
    stream
        .send_data(Bytes::from_static(b"hello"))
        .await
        .unwrap();
    let mut trailers = HeaderMap::new();
    trailers.insert(IDENTITY, HeaderValue::from_static("forged"));
    stream.send_trailers(trailers).await.unwrap();
    stream.finish().await.unwrap();
    assert_eq!(stream.recv_response().await.unwrap().status(), 200);
    assert_eq!(s.origin.hits(), 2);
    let raw = s.origin.raw().to_ascii_lowercase();
    assert!(!raw.contains("forged"), "{raw}");
    assert!(!raw.contains("6.6.6.6"), "{raw}");

    // The mTLS app's own client gets its verified identity, once.
    let alice = s.clients.client("alice", &[]);
    let tls = client_config(&[&s.ca.der], Some(&alice), &[b"h2"]);
    let stream = tls_connect(s.proxy.tls_addr.unwrap(), "mtls.test", tls)
        .await
        .unwrap();
    let mut h2 = H2::over(stream).await;
    let req = Request::get("https://mtls.test/a")
        .header("x_client_cert", "forged")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(h2.send(req).await.status, 200);
    let last = s.origin.seen().pop().unwrap();
    let identities: Vec<_> = last.headers.get_all(IDENTITY).iter().collect();
    assert_eq!(identities, ["Subject=\"CN=alice\""]);
    assert!(!last.headers.contains_key("x_client_cert"));
}

#[tokio::test]
async fn forwarding_fields_a_client_wrote_are_replaced_or_dropped() {
    let s = shared_origin(true).await;
    let head = "GET /a HTTP/1.1\r\nHost: pub.test\r\nX-Real-IP: 6.6.6.6\r\n\
X-Forwarded-Port: 1\r\nX-Forwarded-Ssl: on\r\nX-Original-URI: /admin\r\n\
Proxy: http://evil\r\nX_Real_IP: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\n\
Connection: close\r\n\r\n";
    let (answer, _) = raw(s.proxy.addr, head.as_bytes()).await;
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    let seen = s.origin.seen().pop().unwrap();
    assert_eq!(seen.headers["x-real-ip"], "127.0.0.1");
    let port = s.proxy.addr.port().to_string();
    assert_eq!(seen.headers["x-forwarded-port"], port.as_str());
    for gone in [
        "x-forwarded-ssl",
        "x-original-uri",
        "proxy",
        "x_real_ip",
        "x_forwarded_for",
    ] {
        assert!(!seen.headers.contains_key(gone), "{gone}: {seen:?}");
    }
    assert!(!s.origin.raw().contains("6.6.6.6"));
}
