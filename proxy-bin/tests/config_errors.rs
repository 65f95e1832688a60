//! `portcullis --check`: a valid file passes, and each kind of bad file is
//! refused with the file, the line, the key and the reason, word for word
//! (the line and column where a case gives them).

use std::path::Path;

use crate::support::*;

const APP: &str = r#"
[apps.site]
server_name = "a.test"
reverse_proxy = [{ upstream = [{ location = "127.0.0.1:9000" }] }]
"#;

#[test]
fn the_bundled_example_is_valid() {
    // Checked from a copy: its first start makes a self-signed certificate
    // under examples/tls, which must not appear in the source tree.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo.join("config-example.toml"),
        copy.path().join("config.toml"),
    )
    .unwrap();
    std::fs::create_dir(copy.path().join("examples")).unwrap();
    for dir in ["site", "origin"] {
        let from = repo.join("examples").join(dir).canonicalize().unwrap();
        std::os::unix::fs::symlink(from, copy.path().join("examples").join(dir)).unwrap();
    }
    let scratch = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(BIN)
        .arg("--config")
        .arg(copy.path().join("config.toml"))
        .arg("--check")
        .env("TMPDIR", scratch.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.ends_with("configuration is valid (2 apps)\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "would generate a SELF-SIGNED certificate for localhost, localhost.localdomain"
        ),
        "{stderr}"
    );
    // A check writes nothing where the configuration points, and leaves
    // nothing in the temporary directory.
    assert!(!copy.path().join("examples/tls").exists());
    let left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn bad_files_are_refused_with_file_key_and_reason() {
    let cases: &[(String, &str)] = &[
        (
            format!("listen_port = 8080\nlisten_prt = 1\n{APP}"),
            ":2:1: listen_prt: unknown field `listen_prt`, expected one of",
        ),
        (
            "listen_port = 8080\n[apps.site]\nserver_name = \"a.test\"\nreverse_proxy = [{ upstream = [{ locaton = \"127.0.0.1:1\" }] }]\n".into(),
            ":4:34: apps.site.reverse_proxy[0].upstream[0].locaton: unknown field `locaton`, expected one of `location`, `tls`, `tls_options`",
        ),
        (
            format!("listen_port = \"80\"\n{APP}"),
            ":1:15: listen_port: invalid type: string \"80\", expected u16",
        ),
        (
            format!("listen_port = 70000\n{APP}"),
            ":1:15: listen_port: invalid value: integer `70000`, expected u16",
        ),
        (
            "listen_port = 8080\n[apps.site]\nserver_name = \"a.test\"\nreverse_proxy = [{ upstream = [{ location = \"http://x:1\" }] }]\n".into(),
            ":4:34: apps.site.reverse_proxy[0].upstream[0].location: invalid upstream location \"http://x:1\": write host[:port] without a scheme",
        ),
        (
            "listen_port = 8080\n[apps.site]\nserver_name = \"a b\"\nreverse_proxy = [{ upstream = [{ location = \"x:1\" }] }]\n".into(),
            ": apps.site.server_name: invalid server name \"a b\": only letters, digits, '-' and '_' are allowed in labels",
        ),
        (
            "listen_port = 8080\n[apps.site]\nserver_name = \"a.test\"\nreverse_proxy = [{ upstream = [{ location = \"x:1\" }], load_balance = \"fastest\" }]\n".into(),
            ":4:70: apps.site.reverse_proxy[0].load_balance: unknown variant `fastest`, expected one of `none`, `round_robin`, `random`, `sticky`, `primary_backup`",
        ),
        (
            "listen_port = 8080\n[apps.site]\nserver_name = \"a.test\"\nreverse_proxy = [{ upstream = [{ location = \"x:1\" }], upstream_options = [\"force_http11_upstream\", \"force_http2_upstream\"] }]\n".into(),
            ": apps.site.reverse_proxy[0].upstream_options: force_http11_upstream and force_http2_upstream exclude each other",
        ),
        (
            "listen_port = 8080\n[apps.site]\nserver_name = \"a.test\"\nreverse_proxy = [{ upstream = [{ location = \"x:1\" }], static_files = { root = \".\" } }]\n".into(),
            ": apps.site.reverse_proxy[0]: a route has either upstream or static_files, not both",
        ),
        (
            "listen_port = 8080\n[apps.site]\nserver_name = \"a.test\"\nreverse_proxy = [{ path = \"api\", upstream = [{ location = \"x:1\" }] }]\n".into(),
            ": apps.site.reverse_proxy[0].path: invalid path \"api\": must start with '/'",
        ),
        (
            format!("listen_port = 8080\n{APP}[apps.other]\nserver_name = [\"b.test\", \"A.test\"]\nreverse_proxy = [{{ upstream = [{{ location = \"x:1\" }}] }}]\n"),
            // Apps are checked in name order: "other" before "site".
            ": apps.site.server_name: server name a.test is already served by app \"other\"",
        ),
        (
            format!("listen_port = 8080\ndefault_app = \"nope\"\n{APP}"),
            ": default_application: \"nope\" is not an app defined under [apps]",
        ),
        (
            format!("listen_port = 8080\n[timeouts]\nconnect = \"5 parsecs\"\n{APP}"),
            ":3:11: timeouts.connect: invalid duration unit \"parsecs\" in \"5 parsecs\": use ms, s, m, h or d",
        ),
        (
            format!("listen_port = 8080\nrequest_max_body_size = \"10 furlongs\"\n{APP}"),
            ":2:25: request_max_body_size: invalid size unit \"furlongs\" in \"10 furlongs\": use B, KiB (k), MiB (m), GiB (g), KB, MB or GB",
        ),
        (
            format!("listen_port = 8443\nlisten_port_tls = 8443\n{APP}"),
            ": listen_port_tls: 8443 is listen_port too: each listener needs a port of its own",
        ),
        (
            APP.into(),
            ": listen_port: required (or listen_port_tls): the port to serve HTTP on",
        ),
        (
            format!("listen_port = 8080\nlisten_port_tls = 8443\n{APP}"),
            ":2:1: listen_port_tls: no app has a certificate: set tls_cert_path and tls_cert_key_path, or acme = true, in an app's tls",
        ),
        ("listen_port = 8080\n[apps.a\n".into(), ":2:8: unclosed table, expected `]`"),
        (
            format!("listen_port = 8080\nrequest_buffer_dir = \"/nonexistent/dir\"\n{APP}"),
            ": request_buffer_dir: /nonexistent/dir: No such file or directory",
        ),
        (
            "listen_port = 8080\n[apps.site]\nserver_name = \"a.test\"\nreverse_proxy = [{ static_files = { root = \".\" }, request_buffering = false }]\n".into(),
            ": apps.site.reverse_proxy[0]: load_balance, upstream_options, request_buffering and health_check apply to upstreams, not to static_files",
        ),
        (
            "listen_port = 8080\n[apps.site]\nserver_name = \"a.test\"\n[[apps.site.reverse_proxy]]\nupstream = [{ location = \"x:1\" }]\n[apps.site.reverse_proxy.health_check]\ntype = \"http\"\n".into(),
            ":6:26: apps.site.reverse_proxy[0].health_check.path: required for type = \"http\"",
        ),
        (
            "listen_port = 8080\n[apps.site]\nserver_name = \"a.test\"\n[[apps.site.reverse_proxy]]\nupstream = [{ location = \"x:1\" }]\nhealth_check = { interval = 2, timeout = 5 }\n".into(),
            ": apps.site.reverse_proxy[0].health_check: health check timeout 5s must be more than 0 and less than the interval 2s",
        ),
        (
            "listen_port = 8080\n[apps.site]\nserver_name = \"a.test\"\n[[apps.site.reverse_proxy]]\nupstream = [{ location = \"x:1\" }]\nhealth_check = { type = \"udp\" }\n".into(),
            ":6:25: apps.site.reverse_proxy[0].health_check.type: unknown variant `udp`, expected `tcp` or `http`",
        ),
        (
            format!("listen_port = 8080\ntrusted_forwarded_proxies = [\"10.0.0.0/8\", \"fastly\"]\n{APP}"),
            ": trusted_forwarded_proxies[1]: \"fastly\": no ranges are built in for this provider (only \"cloudflare\"); list the CIDRs it publishes",
        ),
        (
            format!("listen_port = 8080\ntrusted_forwarded_proxies = \"10.0.0.0/40\"\n{APP}"),
            ": trusted_forwarded_proxies[0]: \"10.0.0.0/40\" is not an address range: the prefix length is out of range",
        ),
        (
            format!("listen_port = 8080\n{APP}[experimental.tcp_recv_proxy_protocol]\ntimeout = 50\n"),
            ": experimental.tcp_recv_proxy_protocol.trusted_proxies: the PROXY protocol needs the addresses of the proxies that send it",
        ),
        (
            format!("listen_port = 8080\nsticky_cookie_secret = \"c2hvcnQ\"\n{APP}"),
            ": sticky_cookie_secret: must be 32 bytes as unpadded base64url",
        ),
        (
            format!("listen_port = 8080\nlisten_address_v4 = [\"0.0.0.0\", \"127.0.0.1\"]\n{APP}"),
            ": listen_address_v4: the unspecified address (0.0.0.0 or ::) already covers every address: list it alone",
        ),
        (
            format!("listen_port = 8080\nlisten_address_v4 = \"::1\"\n{APP}"),
            ": listen_address_v4: \"::1\" is not an address of this family",
        ),
        (
            format!("listen_port = 8080\nlisten_ipv6 = false\nlisten_address_v6 = \"[::1]\"\n{APP}"),
            ": listen_ipv6: false, while listen_address_v6 names addresses to listen on",
        ),
        (
            format!("listen_port = 8080\npublic_https_port = 443\n{APP}"),
            ": public_https_port: is the TLS port clients see (in redirections and Alt-Svc): set listen_port_tls",
        ),
        (
            format!("listen_port = 8080\npublic_https_port = 443\nhttps_redirection_port = 8443\n{APP}"),
            ": https_redirection_port: 8443 differs from public_https_port = 443: keep one of the two",
        ),
        (
            format!("listen_port_tls = 8443\n{}", APP.replace("[apps.site]", "[apps.site]\ntls = { https_redirection = true }")),
            ": apps.site.tls.https_redirection: needs both listen_port and listen_port_tls",
        ),
    ];
    let cases: Vec<(String, String)> = cases
        .iter()
        .map(|(config, want)| (config.clone(), want.to_string()))
        .collect();
    assert_refused(&cases);
}

#[test]
fn a_missing_file_is_named() {
    let output = std::process::Command::new(BIN)
        .args(["--config", "/nonexistent/portcullis.toml", "--check"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "portcullis: configuration refused: /nonexistent/portcullis.toml: cannot read the file: No such file or directory (os error 2)\n"
    );
}

#[test]
fn a_file_that_is_no_config_text_is_refused_without_reading_it_all() {
    let refusal = |path: &Path| {
        let output = std::process::Command::new(BIN)
            .arg("--config")
            .arg(path)
            .arg("--check")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert_eq!(
        refusal(Path::new("/dev/zero")),
        "portcullis: configuration refused: /dev/zero: more than 16 MiB: not a config file\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("portcullis.toml");
    std::fs::write(&binary, b"listen_port = 8080\n\xff\xfe").unwrap();
    assert_eq!(
        refusal(&binary),
        format!(
            "portcullis: configuration refused: {}: not UTF-8 text (a byte that is not UTF-8 at offset 19)\n",
            binary.display()
        )
    );
}

#[test]
fn rpxy_spellings_load() {
    let (code, stdout, stderr, _) = check(
        r#"listen_port = 8080
listen_address_v4 = ['127.0.0.1', '127.0.0.1']
request_max_body_size = "256m"
redact_query_in_access_log = true
trusted_forwarded_proxies = ["cloudflare", "10.0.0.0/8"]
sticky_cookie_secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
max_clients = 100
max_concurrent_streams = 50
tcp_listen_backlog = 128
default_app = "site"
[apps.site]
server_name = "localhost"
reverse_proxy = [
  { upstream = [{ location = "127.0.0.1:9000" }, { location = "127.0.0.1:9001" }], load_balance = "round_robin", upstream_options = ["keep_original_host", "force_http2_upstream"] },
  { path = "/maps", replace_path = "/replacing/path1", upstream = [{ location = "127.0.0.1:9002", tls = false }], load_balance = "random", upstream_options = ["upgrade_insecure_requests", "force_http11_upstream", "set_upstream_host", "forwarded_header"], health_check = true },
  { path = "/api", upstream = [{ location = "127.0.0.1:9003" }], load_balance = "primary_backup", health_check = { type = "http", interval = 10, timeout = 5, unhealthy_threshold = 3, healthy_threshold = 2, path = "/healthz", expected_status = 200 } },
]
[experimental]
ignore_sni_consistency = false
connection_handling_timeout = 0
[experimental.tcp_recv_proxy_protocol]
trusted_proxies = ["127.0.0.1/32", "10.0.0.0/8"]
timeout = 50
"#,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.ends_with("configuration is valid (1 apps)\n"));
    assert_eq!(stderr, "");
}
