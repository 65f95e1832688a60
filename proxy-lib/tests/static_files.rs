//! Routes that serve a directory: types, index files, ranges, conditional
//! requests, and every way out of the root refused.

use std::path::Path;

use crate::support::*;
use bytes::Bytes;
use proxy_lib::config::{RouteTarget, StaticFiles};

const SECRET: &str = "TOP SECRET OUTSIDE THE ROOT";

struct Site {
    _dir: tempfile::TempDir,
    proxy: TestProxy,
    big: Vec<u8>,
}

async fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    for d in [
        &root,
        &outside,
        &root.join("sub"),
        &root.join(".well-known"),
    ] {
        std::fs::create_dir_all(d).unwrap();
    }
    let write = |p: &Path, s: &[u8]| std::fs::write(p, s).unwrap();
    write(&root.join("index.html"), b"<h1>home</h1>");
    write(&root.join("style.css"), b"body{}");
    write(&root.join("app.js"), b"let a = 1;");
    write(&root.join("data.json"), b"{}");
    write(&root.join("image.png"), b"\x89PNG\r\n");
    write(&root.join("sub/index.html"), b"<h1>sub</h1>");
    write(&root.join("sub/page.txt"), b"page");
    write(&root.join(".secret"), b"hidden");
    write(&root.join(".well-known/security.txt"), b"Contact: x");
    let big: Vec<u8> = (0..102_400u32).map(|i| (i % 251) as u8).collect();
    write(&root.join("big.bin"), &big);
    write(&outside.join("secret.txt"), SECRET.as_bytes());
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("escape")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("outdir")).unwrap();
    std::os::unix::fs::symlink(root.join("style.css"), root.join("inner.css")).unwrap();

    let files = || RouteTarget::Files(StaticFiles::new(&root).unwrap());
    let config = config()
        .app(app(
            "files",
            &["files.test"],
            vec![
                route(None, None, files()),
                route(Some("/assets"), Some("/"), files()),
            ],
        ))
        .unwrap()
        .build()
        .unwrap();
    Site {
        _dir: dir,
        proxy: TestProxy::start(config).await,
        big,
    }
}

#[tokio::test]
async fn files_are_served_with_their_types() {
    let site = site().await;
    let mut client = H1::connect(site.proxy.addr).await;
    let table = [
        ("/", "text/html; charset=utf-8", "<h1>home</h1>"),
        ("/index.html", "text/html; charset=utf-8", "<h1>home</h1>"),
        ("/style.css", "text/css; charset=utf-8", "body{}"),
        ("/data.json", "application/json; charset=utf-8", "{}"),
        ("/image.png", "image/png", "\u{fffd}PNG\r\n"),
        ("/sub/", "text/html; charset=utf-8", "<h1>sub</h1>"),
        ("/sub/page.txt", "text/plain; charset=utf-8", "page"),
        ("/assets/style.css", "text/css; charset=utf-8", "body{}"),
        ("/inner.css", "text/css; charset=utf-8", "body{}"),
        (
            "/.well-known/security.txt",
            "text/plain; charset=utf-8",
            "Contact: x",
        ),
    ];
    for (path, content_type, body) in table {
        let answer = client.get("files.test", path).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.header("content-type"), Some(content_type), "{path}");
        assert_eq!(answer.text(), body, "{path}");
        assert_eq!(answer.header("accept-ranges"), Some("bytes"));
    }
    let js = client.get("files.test", "/app.js").await;
    assert!(
        js.header("content-type")
            .unwrap()
            .ends_with("javascript; charset=utf-8")
    );

    let answer = client.get("files.test", "/sub?x=1").await;
    assert_eq!(answer.status, 301);
    assert_eq!(answer.header("location"), Some("/sub/?x=1"));

    let answer = client
        .send(request("HEAD", "files.test", "/big.bin", Bytes::new()))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-length"), Some("102400"));
    assert!(answer.body.is_empty());

    let answer = client.get("files.test", "/big.bin").await;
    assert_eq!(answer.body, site.big);

    let answer = client.send(request("POST", "files.test", "/", "x")).await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("allow"), Some("GET, HEAD"));
    assert_eq!(client.get("files.test", "/missing.txt").await.status, 404);
}

#[tokio::test]
async fn ranges_and_conditional_requests() {
    let site = site().await;
    let mut client = H1::connect(site.proxy.addr).await;
    let with = |header: &str, value: &str| {
        let mut req = request("GET", "files.test", "/big.bin", Bytes::new());
        req.headers_mut().insert(
            http::HeaderName::from_bytes(header.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        req
    };
    let answer = client.send(with("range", "bytes=0-9")).await;
    assert_eq!(answer.status, 206);
    assert_eq!(answer.header("content-range"), Some("bytes 0-9/102400"));
    assert_eq!(answer.body, site.big[..10]);

    let answer = client.send(with("range", "bytes=-10")).await;
    assert_eq!(
        answer.header("content-range"),
        Some("bytes 102390-102399/102400")
    );
    assert_eq!(answer.body, site.big[102_390..]);

    let answer = client.send(with("range", "bytes=1000-")).await;
    assert_eq!(answer.body, site.big[1000..]);

    let answer = client.send(with("range", "bytes=200000-")).await;
    assert_eq!(answer.status, 416);
    assert_eq!(answer.header("content-range"), Some("bytes */102400"));

    let full = client.get("files.test", "/big.bin").await;
    let etag = full.header("etag").unwrap().to_owned();
    let modified = full.header("last-modified").unwrap().to_owned();

    let answer = client.send(with("if-none-match", &etag)).await;
    assert_eq!(answer.status, 304);
    assert!(answer.body.is_empty());
    assert_eq!(
        client
            .send(with("if-modified-since", &modified))
            .await
            .status,
        304
    );
    assert_eq!(
        client.send(with("if-none-match", "\"other\"")).await.status,
        200
    );
    assert_eq!(client.send(with("if-match", "\"other\"")).await.status, 412);

    let mut req = with("range", "bytes=0-0");
    req.headers_mut().insert("if-range", etag.parse().unwrap());
    assert_eq!(client.send(req).await.status, 206);
    let mut req = with("range", "bytes=0-0");
    req.headers_mut()
        .insert("if-range", "\"stale\"".parse().unwrap());
    let answer = client.send(req).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body.len(), 102_400);
}

#[tokio::test]
async fn nothing_outside_the_root_is_ever_served() {
    let site = site().await;
    let attempts = [
        "/../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/%2E%2E/outside/secret.txt",
        "/sub/%2e%2e/%2e%2e/outside/secret.txt",
        "/..%2foutside%2fsecret.txt",
        "/sub/..%2f..%2foutside/secret.txt",
        "/sub%5c..%5c..%5coutside%5csecret.txt",
        "/escape",
        "/outdir/secret.txt",
        "/outdir/",
        "/assets/../../outside/secret.txt",
        "/assets/%2e%2e%2f%2e%2e%2foutside/secret.txt",
        "/%00/secret.txt",
        "/.secret",
        "/sub/.%2e/.%2e/outside/secret.txt",
    ];
    for path in attempts {
        let raw_request =
            format!("GET {path} HTTP/1.1\r\nHost: files.test\r\nConnection: close\r\n\r\n");
        let (answer, _) = raw(site.proxy.addr, raw_request.as_bytes()).await;
        let status = status_of(&answer);
        assert!(matches!(status, Some(403 | 404)), "{path}: {answer}");
        assert!(!answer.contains(SECRET), "{path} leaked the secret");
        assert!(!answer.contains("hidden"), "{path} leaked a hidden file");
    }
}
