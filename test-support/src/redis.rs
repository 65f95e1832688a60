//! A real Redis for tests: `redis-server` (Debian package `redis-server`)
//! on a 127.0.0.1 port of its own, with a password, its data in a
//! temporary directory (append-only, so a restart keeps it); in cleartext
//! or, with [`Redis::start_tls`], over TLS only.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use crate::{Ca, free_port};

pub struct Redis {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What a client must present (`AUTH`): part of [`url`](Self::url).
    pub password: String,
    /// The CA of its TLS certificate, when it speaks TLS.
    pub ca: Option<Ca>,
    dir: tempfile::TempDir,
    server: Mutex<Option<Child>>,
}

impl Redis {
    /// A Redis that answers, in cleartext.
    pub async fn start() -> Self {
        Self::launch(None).await
    }

    /// A Redis that answers over TLS only, with a certificate for
    /// 127.0.0.1 and localhost from a CA of its own ([`ca`](Self::ca)).
    pub async fn start_tls() -> Self {
        Self::launch(Some(Ca::root("Redis test CA"))).await
    }

    async fn launch(ca: Option<Ca>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if let Some(ca) = &ca {
            ca.server(&["127.0.0.1", "localhost"])
                .write(dir.path(), "redis");
            ca.write(dir.path(), "ca.pem");
        }
        let redis = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            password: format!("redis-test-password-{}", free_port()),
            ca,
            dir,
            server: Mutex::new(None),
        };
        redis.restart().await;
        redis
    }

    /// The URL of database 0, password included (`rediss://` over TLS).
    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://:{}@{}/0", self.password, self.addr)
    }

    /// The PEM of the CA of its TLS certificate.
    pub fn ca_path(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Starts it again at the same address, after [`stop`](Self::stop),
    /// with the data it had.
    pub async fn restart(&self) {
        let port = self.addr.port().to_string();
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1"]);
        if self.ca.is_some() {
            let file = |name: &str| self.dir.path().join(name);
            command
                .args(["--port", "0", "--tls-port", &port])
                .arg("--tls-cert-file")
                .arg(file("redis.crt"))
                .arg("--tls-key-file")
                .arg(file("redis.key"))
                .arg("--tls-ca-cert-file")
                .arg(file("ca.pem"))
                .args(["--tls-auth-clients", "no"]);
        } else {
            command.args(["--port", &port]);
        }
        let child = command
            .args(["--requirepass", &self.password])
            .args(["--save", "", "--appendonly", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) runs");
        *self.server.lock().unwrap() = Some(child);
        crate::eventually("redis-server answers", || async {
            self.cli(&["PING"]).is_some_and(|out| out == "PONG")
        })
        .await;
    }

    /// Stops it (the data stays on disk for [`restart`](Self::restart)).
    pub fn stop(&self) {
        if let Some(mut child) = self.server.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `redis-cli` run with `args` against it: its output, trimmed, or
    /// `None` when it could not run or reach the server.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &self.addr.port().to_string()]);
        if self.ca.is_some() {
            command.arg("--tls").arg("--cacert").arg(self.ca_path());
        }
        let out = command
            .env("REDISCLI_AUTH", &self.password)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
