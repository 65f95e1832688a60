//! Runs the real `portcullis` binary on a config written to a temporary
//! directory, and watches its output.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use test_support::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// `portcullis --config FILE --check` on `config`: exit code, stdout, stderr.
pub fn check(config: &str) -> (i32, String, String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        path,
    )
}

/// Asserts that `--check` refuses each config, on one line, with a
/// message starting, after the file's path, with its `want`. A `want` that
/// starts with the key (`: key: reason`) is compared with the line and
/// column left out; one that starts with them (`:3:7: key: reason`) is
/// compared as it is.
pub fn assert_refused(cases: &[(String, String)]) {
    for (config, want) in cases {
        let (code, stdout, stderr, path) = check(config);
        assert_eq!(code, 1, "{config}\nstdout: {stdout}");
        let prefix = format!("portcullis: configuration refused: {}", path.display());
        let got = match want.starts_with(": ") {
            true => without_position(&stderr, &prefix),
            false => stderr.clone(),
        };
        assert!(
            got.starts_with(&format!("{prefix}{want}")),
            "for:\n{config}\nwant: {prefix}{want}\ngot:  {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
}

/// `message` with the `:line:column` after `prefix` taken out.
fn without_position(message: &str, prefix: &str) -> String {
    let Some(rest) = message.strip_prefix(prefix) else {
        return message.to_owned();
    };
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let mut after = rest;
    for _ in 0..2 {
        match after.strip_prefix(':') {
            Some(r) if digits(r) > 0 => after = &r[digits(r)..],
            _ => return message.to_owned(),
        }
    }
    format!("{prefix}{after}")
}

type Lines = Arc<Mutex<Vec<String>>>;

/// A running `portcullis` process.
pub struct Portcullis {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    stdout: Lines,
    stderr: Lines,
}

impl Portcullis {
    /// Starts the binary on `config`, which should set `listen_port = 0`.
    pub fn start(config: &str) -> Self {
        Self::start_with_env(config, &[])
    }

    /// Starts the binary on a config with no HTTP listener (a bridge-only
    /// node), once it logs `needle`.
    pub fn start_without_http(config: &str, needle: &str) -> Self {
        let proxy = Self::spawn(config, &[]);
        proxy
            .wait_for_stderr(needle, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("portcullis did not start: {:?}", proxy.stderr_lines()));
        proxy
    }

    /// As [`start`](Self::start), with these environment variables set.
    pub fn start_with_env(config: &str, env: &[(&str, &std::ffi::OsStr)]) -> Self {
        Self::spawn(config, env).listening()
    }

    /// As [`start`](Self::start), with `--watch`.
    pub fn start_watching(config: &str) -> Self {
        Self::spawn_with(config, &[], &["--watch"]).listening()
    }

    /// Replaces the config file as editors and deployment tools do: a new
    /// file renamed over the old one.
    pub fn replace_config(&self, config: &str) {
        let next = self.config_path.with_extension("toml.new");
        std::fs::write(&next, config).unwrap();
        std::fs::rename(&next, &self.config_path).unwrap();
    }

    /// `count` processes on `config`, all spawned before any is waited
    /// for: they start at the same instant.
    pub fn start_together(config: &str, count: usize) -> Vec<Self> {
        let spawned: Vec<Self> = (0..count).map(|_| Self::spawn(config, &[])).collect();
        spawned.into_iter().map(Self::listening).collect()
    }

    /// The process on `config`, not yet waited for.
    fn spawn(config: &str, env: &[(&str, &std::ffi::OsStr)]) -> Self {
        Self::spawn_with(config, env, &[])
    }

    fn spawn_with(config: &str, env: &[(&str, &std::ffi::OsStr)], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("portcullis.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Self {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            dir,
            config_path,
            stdout,
            stderr,
        }
    }

    /// Once it listens, with its address.
    fn listening(mut self) -> Self {
        let line = self
            .wait_for_stderr("listening listen=", Duration::from_secs(20))
            .unwrap_or_else(|| panic!("portcullis did not start: {:?}", self.stderr_lines()));
        let addr = line.rsplit("listen=").next().unwrap().trim();
        self.addr = addr.parse().unwrap();
        self
    }

    /// The HTTP/3 endpoint's address, once it is logged.
    pub fn quic_addr(&self) -> SocketAddr {
        self.logged_addr("listening for HTTP/3 listen=")
    }

    /// The TLS listener's address, once it is logged.
    pub fn tls_addr(&self) -> SocketAddr {
        self.logged_addr("listening for TLS listen=")
    }

    /// The bridge ingress's cleartext listener, once it is logged.
    pub fn ingress_addr(&self) -> SocketAddr {
        self.logged_addr("listening for bridge CONNECT listen=")
    }

    /// The bridge peer's listener, once it is logged.
    pub fn peer_addr(&self) -> SocketAddr {
        self.logged_addr("listening as bridge peer listen=")
    }

    /// The admin listener, once it is logged.
    pub fn admin_addr(&self) -> SocketAddr {
        self.logged_addr("listening for admin requests listen=")
    }

    /// The address after `listen=` on the first stderr line with `needle`.
    fn logged_addr(&self, needle: &str) -> SocketAddr {
        let line = self
            .wait_for_stderr(needle, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("no {needle:?} line: {:?}", self.stderr_lines()));
        line.rsplit("listen=")
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name ("TERM", "HUP", ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// The first stderr line containing `needle`, waiting up to `limit`.
    pub fn wait_for_stderr(&self, needle: &str, limit: Duration) -> Option<String> {
        wait_for(&self.stderr, needle, 1, limit)
    }

    /// The `nth` (from 1) stderr line containing `needle`, waiting up to
    /// `limit`.
    pub fn wait_for_nth_stderr(&self, needle: &str, nth: usize, limit: Duration) -> Option<String> {
        wait_for(&self.stderr, needle, nth, limit)
    }

    pub fn wait_for_stdout(&self, needle: &str, limit: Duration) -> Option<String> {
        wait_for(&self.stdout, needle, 1, limit)
    }

    /// A line of /proc/PID/status, in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

impl Drop for Portcullis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(stream: impl std::io::Read + Send + 'static) -> Lines {
    let lines: Lines = Arc::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn wait_for(lines: &Lines, needle: &str, nth: usize, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        let found = lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .nth(nth - 1)
            .cloned();
        if let Some(line) = found {
            return Some(line);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A config with app `a` (a.test) on TLS forwarding to `upstream`, on
/// 127.0.0.1:0, its certificate files `dir/a.crt` and `dir/a.key`: `top`
/// goes before the app (keys and sections, from line 4), `tls_extra` into
/// its `tls` table.
pub fn tls_app(dir: &std::path::Path, upstream: SocketAddr, top: &str, tls_extra: &str) -> String {
    format!(
        r#"listen_port = 0
listen_port_tls = 0
listen_address_v4 = "127.0.0.1"
{top}
[apps.a]
server_name = "a.test"
tls = {{ tls_cert_path = "{cert}", tls_cert_key_path = "{key}"{tls_extra} }}
reverse_proxy = [{{ upstream = [{{ location = "{upstream}" }}] }}]
"#,
        cert = dir.join("a.crt").display(),
        key = dir.join("a.key").display(),
    )
}

/// A config with one app `a.test` forwarding to `upstream`, on 127.0.0.1:0.
pub fn forwarding(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"listen_port = 0
listen_address_v4 = "127.0.0.1"
{extra}
[apps.a]
server_name = "a.test"
reverse_proxy = [{{ upstream = [{{ location = "{upstream}" }}] }}]
"#
    )
}
