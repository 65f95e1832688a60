//! A real Apache Traffic Server for tests (Debian package `trafficserver`),
//! as the peer of a TLS bridge: TLS on one port of 127.0.0.1, a client
//! certificate required, `CONNECT` served natively. It runs from a
//! sandbox of its own (a runroot: configuration, cache, logs and runtime
//! files in a temporary directory) and is stopped when dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::{Ca, Leaf, free_port};

pub struct TrafficServer {
    dir: tempfile::TempDir,
    child: Child,
    pub addr: SocketAddr,
}

impl TrafficServer {
    /// Serves `cert` (a certificate for the peer's name), requires a
    /// client certificate issued by `clients`, and tunnels `CONNECT` to
    /// the ports in `connect_ports` (Traffic Server's syntax: `*`, or
    /// ports and ranges separated by spaces).
    pub async fn peer(cert: &Leaf, clients: &Ca, connect_ports: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["etc", "run", "log", "cache", "var"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        let etc = root.join("etc");
        let copy = |name: &str| {
            let from = Path::new("/etc/trafficserver").join(name);
            if from.is_dir() {
                copy_dir(&from, &etc.join(name));
            } else if from.exists() {
                std::fs::copy(&from, etc.join(name)).unwrap();
            }
        };
        for name in [
            "body_factory",
            "ip_allow.yaml",
            "logging.yaml",
            "hosting.config",
            "volume.config",
            "parent.config",
            "sni.yaml",
            "splitdns.config",
            "socks.config",
            "cache.config",
            "strategies.yaml",
        ] {
            copy(name);
        }
        cert.write(&etc, "peer");
        clients.write(&etc, "clients.pem");
        let port = free_port();
        let e = etc.display();
        let records = format!(
            "CONFIG proxy.config.http.server_ports STRING {port}:ssl:ipv4:ip-in=127.0.0.1
CONFIG proxy.config.admin.user_id STRING #-1
CONFIG proxy.config.crash_log_helper STRING /bin/true
CONFIG proxy.config.http.connect_ports STRING {connect_ports}
CONFIG proxy.config.url_remap.remap_required INT 0
CONFIG proxy.config.http.cache.http INT 0
CONFIG proxy.config.ssl.server.cert.path STRING {e}
CONFIG proxy.config.ssl.server.private_key.path STRING {e}
CONFIG proxy.config.ssl.client.certification_level INT 2
CONFIG proxy.config.ssl.CA.cert.path STRING {e}
CONFIG proxy.config.ssl.CA.cert.filename STRING clients.pem
CONFIG proxy.config.log.logging_enabled INT 0
CONFIG proxy.config.hostdb.host_file.path STRING /etc/hosts
"
        );
        std::fs::write(etc.join("records.config"), records).unwrap();
        std::fs::write(
            etc.join("ssl_multicert.config"),
            "dest_ip=* ssl_cert_name=peer.crt ssl_key_name=peer.key\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("storage.config"),
            format!("{} 64M\n", root.join("cache").display()),
        )
        .unwrap();
        std::fs::write(etc.join("remap.config"), "").unwrap();
        std::fs::write(etc.join("plugin.config"), "").unwrap();
        let r = root.display();
        let runroot = format!(
            "prefix: {r}\nexec_prefix: /usr\nbindir: /usr/bin\nsbindir: /usr/sbin\nsysconfdir: {r}/etc\ndatadir: {r}/var\nincludedir: /usr/include\nlibdir: /usr/lib/trafficserver\nlibexecdir: /usr/lib/trafficserver/modules\nlocalstatedir: {r}/var\nruntimedir: {r}/run\nlogdir: {r}/log\ncachedir: {r}/cache\n"
        );
        std::fs::write(root.join("runroot.yaml"), runroot).unwrap();
        let out = std::fs::File::create(root.join("out.log")).unwrap();
        let child = Command::new("traffic_server")
            .arg(format!(
                "--run-root={}",
                root.join("runroot.yaml").display()
            ))
            .current_dir(root)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("traffic_server (Debian package trafficserver) runs");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = Self { dir, child, addr };
        crate::eventually("Traffic Server accepts", || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        server
    }

    /// What it wrote to its console and its diagnostics log.
    pub fn output(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("out.log"), read("log/diags.log"))
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

impl Drop for TrafficServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
