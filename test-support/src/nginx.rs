//! A real nginx for tests (Debian package `nginx`): started on a config
//! the test writes, in a temporary directory of its own, in the
//! foreground, and stopped when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Nginx {
    dir: tempfile::TempDir,
    child: Child,
}

impl Nginx {
    /// nginx running `http` (the inside of an `http { }` block; `{dir}` in
    /// it stands for the nginx's directory, where the test may put files
    /// first through `prepare`), once it accepts on `port`.
    pub async fn start(port: u16, prepare: impl FnOnce(&Path), http: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let d = dir.path().display().to_string();
        let temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .map(|kind| format!("{kind}_temp_path {d};"))
            .join(" ");
        let config = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\naccess_log off;\n{temp}\n{}\n}}\n",
            http.replace("{dir}", &d)
        );
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (Debian package nginx) runs");
        let nginx = Self { dir, child };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        crate::eventually("nginx answers", || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        nginx
    }

    /// Its error log so far.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM, not KILL: the master then stops its worker, which a killed
        // master would leave listening.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
