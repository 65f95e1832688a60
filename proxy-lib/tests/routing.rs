//! Host → app and path → route, through the proxy to real origins.

use crate::support::*;

#[tokio::test]
async fn hosts_choose_apps() {
    let site = Origin::start("site").await;
    let wild = Origin::start("wild").await;
    let api = Origin::start("api").await;
    let fallback = Origin::start("fallback").await;
    let config = config()
        .app(app(
            "site",
            &["example.com", "www.example.com"],
            vec![route(None, None, to(&[&site]))],
        ))
        .unwrap()
        .app(app(
            "wild",
            &["*.example.com"],
            vec![route(None, None, to(&[&wild]))],
        ))
        .unwrap()
        .app(app(
            "api",
            &["api.example.com"],
            vec![route(None, None, to(&[&api]))],
        ))
        .unwrap()
        .app(app(
            "fallback",
            &["fallback.test"],
            vec![route(None, None, to(&[&fallback]))],
        ))
        .unwrap()
        .default_app("fallback")
        .build()
        .unwrap();
    let proxy = TestProxy::start(config).await;

    let table = [
        ("example.com", "site"),
        ("EXAMPLE.com:8080", "site"),
        ("example.com.", "site"),
        ("www.example.com", "site"),
        ("a.example.com", "wild"),
        ("api.example.com", "api"),
        ("API.Example.Com", "api"),
        ("x.y.example.com", "fallback"),
        ("example.org", "fallback"),
        ("127.0.0.1", "fallback"),
    ];
    let mut client = H1::connect(proxy.addr).await;
    for (host, want) in table {
        let answer = client.get(host, "/").await;
        assert_eq!(answer.status, 200, "{host}");
        assert_eq!(answer.text(), want, "Host {host}");
    }

    // Absolute-form wins over the Host header (RFC 9112 3.2.2).
    let (raw_answer, _) = raw(
        proxy.addr,
        b"GET http://api.example.com/x HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw_answer.ends_with("api"), "{raw_answer}");

    // HTTP/2 routes on :authority.
    let mut h2 = H2::connect(proxy.addr).await;
    assert_eq!(h2.get("a.example.com", "/").await.text(), "wild");
    assert_eq!(h2.get("api.example.com:443", "/").await.text(), "api");
}

#[tokio::test]
async fn unknown_host_without_default_is_misdirected() {
    let site = Origin::start("site").await;
    let proxy = TestProxy::start(single("example.com", &[&site])).await;
    let answer = get(proxy.addr, "other.test", "/").await;
    assert_eq!(answer.status, 421);
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        answer.text(),
        "421 Misdirected Request: no app serves this host\n"
    );
    assert_eq!(site.hits(), 0);
}

#[tokio::test]
async fn longest_prefix_on_whole_segments() {
    let api = Origin::start("api").await;
    let v2 = Origin::start("v2").await;
    let rest = Origin::start("rest").await;
    let admin = Origin::start("admin").await;
    let config = config()
        .app(app(
            "a",
            &["a.test"],
            vec![
                route(Some("/api"), None, to(&[&api])),
                route(Some("/api/v2/"), None, to(&[&v2])),
                route(Some("/admin"), None, to(&[&admin])),
                route(None, None, to(&[&rest])),
            ],
        ))
        .unwrap()
        .build()
        .unwrap();
    let proxy = TestProxy::start(config).await;
    let table = [
        ("/", "rest"),
        ("/api", "api"),
        ("/api/", "api"),
        ("/api/x", "api"),
        ("/apix", "rest"),
        ("/api/v2", "v2"),
        ("/api/v2/users?id=1", "v2"),
        ("/api/v20", "api"),
        ("/API", "rest"),
        // Dot segments are resolved before routing, plain or encoded.
        ("/api/../admin/x", "admin"),
        ("/api/%2e%2e/admin", "admin"),
        ("/admin/./x", "admin"),
    ];
    let mut client = H1::connect(proxy.addr).await;
    for (path, want) in table {
        assert_eq!(client.get("a.test", path).await.text(), want, "{path}");
    }
    // Forwarded paths are the normalised ones.
    assert_eq!(admin.seen()[0].uri, "/admin/x");
    assert_eq!(admin.seen()[1].uri, "/admin");

    let answer = client.get("a.test", "/../etc/passwd").await;
    assert_eq!(answer.status, 403);
    // Dot segments only an upstream would see: behind an encoded slash or
    // backslash, or a path parameter (Tomcat's `..;`).
    for hidden in [
        "/api/..%2Fadmin/x",
        "/api/..%5cadmin/x",
        "/api/..;/admin/x",
        "/api/%2e%2e;x=1/admin",
    ] {
        assert_eq!(client.get("a.test", hidden).await.status, 403, "{hidden}");
    }
    // An encoded slash alone is the app's business.
    assert_eq!(
        client.get("a.test", "/api/group%2Fproject").await.text(),
        "api"
    );
    assert_eq!(api.seen().last().unwrap().uri, "/api/group%2Fproject");
    assert_eq!(
        rest.hits() + api.hits() + v2.hits() + admin.hits(),
        table.len() + 1
    );
}

#[tokio::test]
async fn replace_path_rewrites_the_matched_prefix() {
    let maps = Origin::start("maps").await;
    let root = Origin::start("root").await;
    let config = config()
        .app(app(
            "a",
            &["a.test"],
            vec![
                route(Some("/maps"), Some("/replacing/path1"), to(&[&maps])),
                route(Some("/strip"), Some("/"), to(&[&root])),
            ],
        ))
        .unwrap()
        .build()
        .unwrap();
    let proxy = TestProxy::start(config).await;
    let mut client = H1::connect(proxy.addr).await;
    let cases = [
        (
            "/maps/org/any.ext?q=1&r=%20",
            &maps,
            "/replacing/path1/org/any.ext?q=1&r=%20",
        ),
        ("/maps", &maps, "/replacing/path1"),
        ("/maps/", &maps, "/replacing/path1/"),
        ("/strip/x/y?z", &root, "/x/y?z"),
        ("/strip", &root, "/"),
    ];
    for (path, origin, want) in cases {
        let answer = client.get("a.test", path).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(origin.seen().last().unwrap().uri, want, "{path}");
    }
    // No route matches and there is no fallback.
    assert_eq!(client.get("a.test", "/other").await.status, 404);
}
