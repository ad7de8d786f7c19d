//! Peer servers for `h2lab bench`: nginx, h2o and nghttpd serving the same
//! `Hello World\n` on loopback, one worker each (N with `bench --threads`),
//! with the same development
//! certificate, each from a generated configuration in a temporary folder.
//! Measured like our servers: CPU from /proc, summed over the peer's
//! process and its children (nginx's workers).

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::system::{children_of, pinned};
use crate::engine::Body;
use crate::identity::Identity;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Peer {
    Nginx,
    H2o,
    Nghttpd,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Nginx => "nginx",
            Peer::H2o => "h2o",
            Peer::Nghttpd => "nghttpd",
        }
    }

    fn binary(self) -> &'static str {
        self.name()
    }

    /// The Debian package that has the binary.
    pub fn package(self) -> &'static str {
        match self {
            Peer::Nginx => "nginx-light",
            Peer::H2o => "h2o",
            Peer::Nghttpd => "nghttp2-server",
        }
    }

    /// The binary on PATH, if any.
    pub fn find(self) -> Option<PathBuf> {
        let paths = std::env::var_os("PATH")?;
        let mut dirs: Vec<PathBuf> = std::env::split_paths(&paths).collect();
        // Debian puts nginx and nghttpd in sbin, which a user's PATH may lack.
        dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
        dirs.into_iter()
            .map(|d| d.join(self.binary()))
            .find(|p| p.is_file())
    }
}

/// A running peer; stopped (with its children) and its folder removed on drop.
pub struct RunningPeer {
    child: Child,
    dir: PathBuf,
    pub url: String,
}

impl RunningPeer {
    /// The peer's process and its children.
    pub fn pids(&self) -> Vec<u32> {
        let root = self.child.id();
        let mut pids = vec![root];
        pids.extend(children_of(root));
        pids
    }
}

impl Drop for RunningPeer {
    fn drop(&mut self) {
        // Its own process group: nginx's workers go with the master.
        super::system::kill_group(self.child.id());
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port on `host` (bound, then released for the peer to take).
fn free_port(host: IpAddr) -> std::io::Result<u16> {
    Ok(TcpListener::bind((host, 0))?.local_addr()?.port())
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Starts `peer` with TLS or h2c and `threads` workers (0: one; under
/// `taskset -c PIN` if given), serving `body` on `host` (127.0.0.1, or the
/// server's end of a veth pair), and waits until it accepts connections.
pub fn start(
    peer: Peer,
    tls: bool,
    threads: usize,
    pin: Option<&str>,
    body: Body,
    host: IpAddr,
) -> Result<RunningPeer, String> {
    let binary = peer.find().ok_or_else(|| {
        format!(
            "`{}` not found (Debian: apt-get install {})",
            peer.binary(),
            peer.package()
        )
    })?;
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("h2lab-peer-{}-{n}", std::process::id()));
    let setup = || -> std::io::Result<(Command, u16)> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        // Peers that drop privileges must still read their files.
        set_mode(&dir, 0o755)?;
        let id = Identity::development();
        std::fs::write(dir.join("cert.pem"), &id.cert_pem)?;
        std::fs::write(dir.join("key.pem"), &id.key_pem)?;
        set_mode(&dir.join("key.pem"), 0o644)?;
        let mut content = Vec::with_capacity(body.len() as usize);
        Body::append(0, body.len() as usize, &mut content);
        std::fs::write(dir.join("index.html"), content)?;
        set_mode(&dir.join("index.html"), 0o644)?;
        let port = free_port(host)?;
        Ok((
            command(
                peer,
                &binary,
                &dir,
                SocketAddr::from((host, port)),
                tls,
                threads.max(1),
                body,
            )?,
            port,
        ))
    };
    let (cmd, port) =
        setup().map_err(|e| format!("{}: cannot prepare {}: {e}", peer.name(), dir.display()))?;
    let child = super::system::owned(pinned(cmd, pin))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    super::system::register(child.id());
    let scheme = if tls { "https" } else { "http" };
    let running = RunningPeer {
        child,
        dir,
        url: format!("{scheme}://{host}:{port}/"),
    };
    let addr = SocketAddr::from((host, port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if super::system::interrupted() {
            return Err("interrupted".into());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} did not listen on {addr} within 10 s",
                peer.name()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // nginx's master listens before its worker exists, and the worker is
    // what serves: its CPU time must be in the measured set from the start.
    while peer == Peer::Nginx && children_of(running.child.id()).is_empty() {
        if super::system::interrupted() {
            return Err("interrupted".into());
        }
        if Instant::now() > deadline {
            return Err("nginx started no worker within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(running)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn command(
    peer: Peer,
    binary: &Path,
    dir: &Path,
    addr: SocketAddr,
    tls: bool,
    threads: usize,
    body: Body,
) -> std::io::Result<Command> {
    let (host, port) = (addr.ip(), addr.port());
    let d = dir.display();
    let mut cmd = Command::new(binary);
    match peer {
        Peer::Nginx => {
            // The seed's answer from memory, its best; any other body from
            // the file, as h2o and nghttpd serve it.
            let answer = match body == Body::default() {
                true => "default_type text/html; return 200 \"Hello World\\n\";".to_string(),
                false => format!("default_type text/html; root {d}; try_files /index.html =404;"),
            };
            let listen = if tls { "ssl http2" } else { "http2" };
            // keepalive_requests: the default (1000) sends GOAWAY mid-run.
            let conf = format!(
                "worker_processes {threads};\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 4096; }}\n\
                 http {{\n  access_log off;\n  keepalive_requests 1000000000;\n\
                 client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;\n\
                 fastcgi_temp_path {d}/tmp/fastcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;\n\
                 server {{\n    listen {host}:{port} {listen};\n\
                 ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n\
                 location / {{ {answer} }}\n  }}\n}}\n"
            );
            std::fs::write(dir.join("nginx.conf"), conf)?;
            cmd.arg("-p").arg(dir).arg("-c").arg(dir.join("nginx.conf"));
        }
        Peer::H2o => {
            let ssl = match tls {
                true => format!(
                    "  ssl:\n    certificate-file: {d}/cert.pem\n    key-file: {d}/key.pem\n    ocsp-update-interval: 0\n"
                ),
                false => String::new(),
            };
            // No access-log directive at all: h2o then logs nothing (with
            // `access-log: /dev/null` it still writes a line per request).
            // h2o 2.2 cannot answer from memory; file.file keeps the file
            // open and reads it with one pread per request.
            let conf = format!(
                "listen:\n  host: {host}\n  port: {port}\n{ssl}num-threads: {threads}\n\
                 error-log: {d}/error.log\nhosts:\n  default:\n    paths:\n      /:\n        file.file: {d}/index.html\n"
            );
            std::fs::write(dir.join("h2o.conf"), conf)?;
            set_mode(&dir.join("h2o.conf"), 0o644)?;
            cmd.arg("-c").arg(dir.join("h2o.conf"));
        }
        Peer::Nghttpd => {
            cmd.args(["-a", &host.to_string(), "-n", &threads.to_string(), "-d"])
                .arg(dir);
            match tls {
                true => {
                    cmd.arg(port.to_string())
                        .arg(dir.join("key.pem"))
                        .arg(dir.join("cert.pem"));
                }
                false => {
                    cmd.arg("--no-tls").arg(port.to_string());
                }
            }
        }
    }
    Ok(cmd)
}
