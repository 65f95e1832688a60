//! `[layer4]` in the `portcullis` process: a name passed whole to a real
//! nginx that reads the client's address from a PROXY v2 header and shows
//! its own certificate, beside an app terminated on the same port; bad
//! values refused at their key.

use std::path::Path;

use crate::support::*;

fn config(dir: &Path, upstream: std::net::SocketAddr, layer4: &str) -> String {
    tls_app(dir, upstream, layer4, ", https_redirection = false")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_nginx_behind_a_route_reads_the_client_from_a_proxy_v2_header() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Proxy CA");
    ca.server(&["a.test"]).write(dir.path(), "a");
    let backend_ca = Ca::root("Backend CA");
    let leaf = backend_ca.server(&["pass.test"]);
    let port = free_port();
    let nginx = Nginx::start(
        port,
        |d| {
            leaf.write(d, "pass");
        },
        &format!(
            "server {{ listen 127.0.0.1:{port} ssl proxy_protocol; \
             ssl_certificate {{dir}}/pass.crt; ssl_certificate_key {{dir}}/pass.key; \
             location / {{ return 200 \"$proxy_protocol_addr $proxy_protocol_port\"; }} }}"
        ),
    )
    .await;
    let origin = Origin::start("terminated").await;
    let section = format!(
        "[layer4]\nroutes = [{{ server_name = ['pass.test'], upstream = [{{ location = '127.0.0.1:{port}' }}], proxy_protocol = 'v2' }}]"
    );
    let proxy = Portcullis::start(&config(dir.path(), origin.addr, &section));

    let client = client_config(&[&backend_ca.der], None, &[b"http/1.1"]);
    let stream = tls_connect(proxy.tls_addr(), "pass.test", client)
        .await
        .unwrap();
    assert_eq!(
        peer_leaf(&stream),
        leaf.chain[0],
        "the backend's certificate"
    );
    let local = stream.get_ref().0.local_addr().unwrap();
    let answer = H1::over(stream).await.get("pass.test", "/").await;
    assert_eq!(answer.status, 200, "{}", nginx.errors());
    assert_eq!(answer.text(), format!("127.0.0.1 {}", local.port()));

    let client = client_config(&[&ca.der], None, &[b"http/1.1"]);
    let stream = tls_connect(proxy.tls_addr(), "a.test", client)
        .await
        .unwrap();
    let answer = H1::over(stream).await.get("a.test", "/").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "terminated");

    let logged = proxy
        .wait_for_stdout("\"LAYER4 pass.test\"", std::time::Duration::from_secs(5))
        .expect("an access-log line");
    assert!(
        logged.contains(&format!("backend=127.0.0.1:{port} up=")) && logged.ends_with("end=closed"),
        "{logged}"
    );
    assert!(
        !logged.contains(" up=0 ") && !logged.contains(" down=0 "),
        "{logged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_passed_connection_is_cut_and_logged_with_its_bytes() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    ca.server(&["a.test"]).write(dir.path(), "a");
    // A backend that takes the connection and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            held.push(tcp);
        }
    });
    let section = format!(
        "[layer4]\nidle_timeout = \"1s\"\nroutes = [{{ server_name = 'quiet.test', upstream = [{{ location = '{backend}' }}] }}]"
    );
    let origin = Origin::start("o").await;
    let proxy = Portcullis::start(&config(dir.path(), origin.addr, &section));
    let hello = client_hello("quiet.test", None);
    let mut tcp = tokio::net::TcpStream::connect(proxy.tls_addr())
        .await
        .unwrap();
    tcp.write_all(&hello).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("cut at the idle timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    let logged = proxy
        .wait_for_stdout("\"LAYER4 quiet.test\"", std::time::Duration::from_secs(5))
        .expect("an access-log line");
    assert!(
        logged.ends_with(&format!(
            "backend={backend} up={} down=0 end=idle",
            hello.len()
        )),
        "{logged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer4_routes_alone_need_no_certificate_of_ours() {
    let backend_ca = Ca::root("Backend CA");
    let backend = TlsOrigin::start(
        "backend",
        TlsOriginOptions::new(backend_ca.server(&["pass.test"])),
    )
    .await;
    let config = format!(
        "listen_port = 0\nlisten_port_tls = 0\nlisten_address_v4 = \"127.0.0.1\"\n[layer4]\nroutes = [{{ server_name = 'pass.test', upstream = [{{ location = '{}' }}] }}]\n[apps.a]\nserver_name = \"a.test\"\nreverse_proxy = [{{ upstream = [{{ location = \"127.0.0.1:9\" }}] }}]\n",
        backend.addr
    );
    let proxy = Portcullis::start(&config);
    let client = client_config(&[&backend_ca.der], None, &[b"http/1.1"]);
    let stream = tls_connect(proxy.tls_addr(), "pass.test", client.clone())
        .await
        .unwrap();
    let answer = H1::over(stream).await.get("pass.test", "/").await;
    assert_eq!(answer.text(), "backend");
    // Any other name meets a TLS listener with no certificate.
    assert_alert(
        tls_connect(proxy.tls_addr(), "a.test", client).await,
        rustls::AlertDescription::UnrecognisedName,
    );
}

#[test]
fn bad_layer4_settings_are_refused_at_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    ca.server(&["a.test"]).write(dir.path(), "a");
    let up = "127.0.0.1:9".parse().unwrap();
    let case = |section: &str, want: &str| (config(dir.path(), up, section), want.to_owned());
    let route = |extra: &str| {
        format!(
            "[layer4]\nroutes = [{{ server_name = 'p.test', upstream = [{{ location = '127.0.0.1:443' }}]{extra} }}]"
        )
    };
    assert_refused(&[
        case("[layer4]\n", ": layer4: no routes and no default_upstream"),
        case(
            "[layer4]\nroutes = [{ server_name = 'bad name', upstream = [{ location = '127.0.0.1:443' }] }]",
            ": layer4.routes[0].server_name: ",
        ),
        case(
            "[layer4]\nroutes = [{ server_name = 'p.test', upstream = [{ location = 'nowhere' }] }]",
            ": layer4.routes[0].upstream[0].location: \"nowhere\": a backend is HOST:PORT",
        ),
        case(
            "[layer4]\nroutes = [{ server_name = 'p.test', upstream = [] }]",
            ": layer4.routes[0].upstream: a layer-4 route needs a backend",
        ),
        case(
            &route(", proxy_protocol = 'v3'"),
            ": layer4.routes[0].proxy_protocol: \"v3\": \"v1\" or \"v2\"",
        ),
        case(
            &route(", load_balance = 'random'"),
            ": layer4.routes[0].load_balance: \"random\": \"round_robin\"",
        ),
        case(
            "[layer4]\ndefault_upstream = [{ location = '127.0.0.1:443', proxy_protocol = 'v9' }]",
            ": layer4.default_upstream[0].proxy_protocol: \"v9\"",
        ),
        case(
            &format!(
                "{}\ninspect_timeout = \"0s\"",
                "[layer4]\ndefault_upstream = [{ location = '127.0.0.1:443' }]"
            ),
            ": layer4.inspect_timeout: must be more than zero",
        ),
        case(
            "[layer4]\nroutes = [{ server_name = 'a.test', upstream = [{ location = '127.0.0.1:443' }] }]",
            ": a.test is both a layer-4 route and a server name of app \"a\"",
        ),
        case(
            "[layer4]\nmax_connections = 0\ndefault_upstream = [{ location = '127.0.0.1:443' }]",
            ": layer4.max_connections: must be at least 1",
        ),
        case(
            &route(", weight = 1"),
            ":5:82: layer4.routes[0].weight: unknown field `weight`",
        ),
    ]);
}
