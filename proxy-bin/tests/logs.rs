//! `[log]` in the `portcullis` process: the combined format read by the
//! usual combined-log pattern, JSON access lines and JSON error lines read
//! by a JSON parser, and the access-log file reopened on SIGUSR1 after a
//! rotation.

use std::time::Duration;

use crate::support::*;

fn config(upstream: std::net::SocketAddr, log: &str) -> String {
    forwarding(upstream, &format!("[log]\n{log}"))
}

/// The lines of `path` once it holds `count` of them.
async fn lines(path: &std::path::Path, count: usize) -> Vec<String> {
    eventually("the access log is written", || async {
        std::fs::read_to_string(path).is_ok_and(|text| text.lines().count() >= count)
    })
    .await;
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn get_with(addr: std::net::SocketAddr, path: &str, agent: &str) -> u16 {
    let mut request = request("GET", "a.test", path, "");
    let headers = request.headers_mut();
    headers.insert("referer", "https://from.test/page".parse().unwrap());
    headers.insert("user-agent", agent.parse().unwrap());
    H1::connect(addr).await.send(request).await.status.as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_lines_go_to_the_file_and_follow_a_rotation() {
    let origin = Origin::start("o").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let proxy = Portcullis::start(&config(
        origin.addr,
        &format!(
            "access_log_format = \"combined\"\naccess_log_path = \"{}\"\n",
            path.display()
        ),
    ));
    assert_eq!(
        get_with(proxy.addr, "/first?q=1", "agent \"one\"").await,
        200
    );
    let combined = regex::Regex::new(
        r#"^(\S+) (\S+) (\S+) \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"$"#,
    )
    .unwrap();
    let first = lines(&path, 1).await;
    let fields = combined
        .captures(&first[0])
        .unwrap_or_else(|| panic!("not a combined line: {}", first[0]));
    assert_eq!(&fields[1], "127.0.0.1");
    assert_eq!(&fields[5], "GET");
    assert_eq!(&fields[6], "/first?q=1");
    assert_eq!(&fields[8], "200");
    assert_eq!(&fields[10], "https://from.test/page");
    assert_eq!(&fields[11], "agent \\x22one\\x22");
    assert!(
        proxy.stdout_lines().is_empty(),
        "{:?}",
        proxy.stdout_lines()
    );

    // logrotate moves the file away, then signals.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    proxy.signal("USR1");
    proxy
        .wait_for_stderr("SIGUSR1: access log reopened", Duration::from_secs(5))
        .expect("the reopen is logged");
    assert_eq!(get_with(proxy.addr, "/second", "two").await, 200);
    let second = lines(&path, 1).await;
    assert_eq!(second.len(), 1);
    assert!(
        second[0].contains("\"GET /second HTTP/1.1\" 200"),
        "{}",
        second[0]
    );
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert_eq!(old.lines().count(), 1, "{old}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_parse_as_json() {
    let origin = Origin::start("o").await;
    let proxy = Portcullis::start(&config(origin.addr, "access_log_format = \"json\"\n"));
    assert_eq!(get_with(proxy.addr, "/j?x=%22y%22", "agent").await, 200);
    let line = proxy
        .wait_for_stdout("\"kind\":\"request\"", Duration::from_secs(5))
        .expect("a JSON access line");
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["kind"], "request");
    assert_eq!(value["method"], "GET");
    assert_eq!(value["host"], "a.test");
    assert_eq!(value["path"], "/j?x=%22y%22");
    assert_eq!(value["status"], 200);
    assert_eq!(value["app"], "a");
    assert_eq!(value["referer"], "https://from.test/page");
    assert_eq!(value["user_agent"], "agent");
    assert!(value["time"].as_str().unwrap().ends_with('Z'));
    assert!(value["duration_us"].as_u64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_lines_can_be_json_objects() {
    let origin = Origin::start("o").await;
    let proxy = Portcullis::start_without_http(
        &config(origin.addr, "error_log_format = \"json\"\n"),
        "\"message\":\"listening\"",
    );
    let lines = proxy.stderr_lines();
    assert!(!lines.is_empty());
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            value["level"].is_string() && value["fields"]["message"].is_string(),
            "{line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"message\":\"portcullis starting\"")),
        "{lines:?}"
    );
}

#[test]
fn bad_log_settings_are_refused_at_their_key() {
    let up = "127.0.0.1:9".parse().unwrap();
    assert_refused(&[
        (
            config(up, "access_log_format = \"apache\"\n"),
            ": log.access_log_format: \"apache\": \"extended\" (the default), \"common\", \"combined\" or \"json\"".to_owned(),
        ),
        (
            config(up, "access_log_path = \"\"\n"),
            ": log.access_log_path: empty".to_owned(),
        ),
        (
            config(up, "error_log_format = \"xml\"\n"),
            ": log.error_log_format: \"xml\": \"text\" (the default) or \"json\"".to_owned(),
        ),
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_request_forges_no_field_in_the_default_format() {
    let origin = Origin::start("o").await;
    let proxy = Portcullis::start(&config(origin.addr, ""));
    // A host that is no host is refused and logged as `-`; a path may hold
    // a quote.
    let forged = b"GET /x\"_999_0_\"y HTTP/1.1\r\nHost: a.test\" 999 0 \"x\xff\r\n\
Connection: close\r\n\r\n";
    let (answer, _) = raw(proxy.addr, forged).await;
    assert!(status_of(&answer).is_some(), "{answer}");
    let line = proxy
        .wait_for_stdout("\"GET /x", Duration::from_secs(5))
        .expect("an access line");
    assert!(!line.contains("999 0"), "{line}");
    assert!(
        line.contains("\"GET /x\\x22_999_0_\\x22y HTTP/1.1\""),
        "{line}"
    );
}
