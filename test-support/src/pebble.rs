//! A real ACME server for tests: Let's Encrypt's `pebble` and its mock DNS
//! `pebble-challtestsrv` (Debian package `pebble`), on 127.0.0.1 ports of
//! their own, validating TLS-ALPN-01 at the port the test's proxy listens
//! on. Pebble's own HTTPS certificate is made here, so its directory is
//! trusted through [`Pebble::ca`]; the certificates it issues chain to a
//! root it makes at each start ([`Pebble::issuing_roots`]).

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::{Ca, H1, client_config, request, tls_connect};

pub struct Pebble {
    /// The directory URL to order from.
    pub directory: String,
    /// The CA of pebble's own HTTPS certificate (for the directory).
    pub ca: Ca,
    /// Where pebble validates TLS-ALPN-01: 127.0.0.1 (or what the mock DNS
    /// says) at this port.
    pub tls_port: u16,
    listen: SocketAddr,
    management: SocketAddr,
    dns: SocketAddr,
    dns_management: SocketAddr,
    dir: tempfile::TempDir,
    pebble: Mutex<Option<Child>>,
    challtestsrv: Mutex<Option<Child>>,
    output: Arc<Mutex<String>>,
}

/// A port free on 127.0.0.1 now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Pebble {
    /// Pebble and its DNS, validating at `tls_port`, ready to order from.
    pub async fn start(tls_port: u16) -> Self {
        let pebble = Self::prepare(tls_port).await;
        pebble.start_server().await;
        pebble
    }

    /// The mock DNS running and pebble configured but not started: a CA
    /// that is down until [`start_server`](Self::start_server).
    pub async fn prepare(tls_port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::root("Pebble HTTPS test CA");
        let (cert, key) = ca
            .server(&["127.0.0.1", "localhost"])
            .write(dir.path(), "pebble");
        let (listen, management, dns, dns_management) = (
            local(free_port()),
            local(free_port()),
            local(free_port()),
            local(free_port()),
        );
        let config = format!(
            r#"{{"pebble": {{"listenAddress": "{listen}", "managementListenAddress": "{management}",
              "certificate": "{}", "privateKey": "{}", "httpPort": {}, "tlsPort": {tls_port},
              "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}"#,
            cert.display(),
            key.display(),
            free_port(),
        );
        std::fs::write(dir.path().join("pebble.json"), config).unwrap();
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-management", &dns_management.to_string()])
            .args(["-dns01", &dns.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian package pebble) runs");
        let pebble = Self {
            directory: format!("https://{listen}/dir"),
            ca,
            tls_port,
            listen,
            management,
            dns,
            dns_management,
            dir,
            pebble: Mutex::new(None),
            challtestsrv: Mutex::new(Some(challtestsrv)),
            output: Arc::new(Mutex::new(String::new())),
        };
        crate::eventually("pebble-challtestsrv answers", || async {
            tokio::net::TcpStream::connect(dns_management).await.is_ok()
        })
        .await;
        pebble
    }

    /// Starts pebble (again, after [`stop_server`](Self::stop_server)):
    /// a new issuing root each time.
    pub async fn start_server(&self) {
        let mut child = Command::new("pebble")
            .arg("-config")
            .arg(self.config_path())
            .args(["-dnsserver", &self.dns.to_string()])
            // Validations at once, no nonce refused on purpose, a new
            // validation for every order.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (Debian package pebble) runs");
        let stdout = child.stdout.take().unwrap();
        let output = self.output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut output = output.lock().unwrap();
                output.push_str(&line);
                output.push('\n');
            }
        });
        *self.pebble.lock().unwrap() = Some(child);
        let listen = self.listen;
        crate::eventually("pebble answers", || async {
            tokio::net::TcpStream::connect(listen).await.is_ok()
        })
        .await;
    }

    /// Stops pebble; the mock DNS keeps running.
    pub fn stop_server(&self) {
        if let Some(mut child) = self.pebble.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("pebble.json")
    }

    /// Pebble's output so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// How many certificates pebble issued since it was first started.
    pub fn issued(&self) -> usize {
        self.output().matches("Issued certificate serial").count()
    }

    /// The roots the certificates pebble issues chain to.
    pub async fn issuing_roots(&self) -> Vec<CertificateDer<'static>> {
        let config = client_config(&[&self.ca.der], None, &[b"http/1.1"]);
        let stream = tls_connect(self.management, "127.0.0.1", config)
            .await
            .unwrap();
        let mut client = H1::over(stream).await;
        let answer = client.get(&self.management.to_string(), "/roots/0").await;
        assert_eq!(answer.status, 200, "pebble's roots: {}", answer.text());
        CertificateDer::pem_slice_iter(answer.text().as_bytes())
            .map(|c| c.unwrap())
            .collect()
    }

    /// Makes the mock DNS answer `host` with `ip` (A record), so that
    /// pebble validates it there.
    pub async fn point(&self, host: &str, ip: &str) {
        let body = format!(r#"{{"host": "{host}.", "addresses": ["{ip}"]}}"#);
        let mut client = H1::connect(self.dns_management).await;
        let answer = client
            .send(request(
                "POST",
                &self.dns_management.to_string(),
                "/add-a",
                body,
            ))
            .await;
        assert_eq!(answer.status, 200, "add-a: {}", answer.text());
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop_server();
        if let Some(mut child) = self.challtestsrv.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
