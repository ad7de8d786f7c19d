//! Shared test helpers: real servers on port 0, real client tools, and a raw
//! HTTP/2 client (plain TCP, or rustls with ALPN) for hand-made bad input.
#![allow(dead_code)] // each test crate uses its own part of this module

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use h2lab::frame::{self, FrameHeader, FrameType, Reason, CLIENT_PREFACE, HEADER_LEN};
use h2lab::{Dispatch, Engine, Server, ServerConfig, Setup, TlsProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// Long enough for a loaded CI machine, short enough that a hang fails fast.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

pub const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
/// HEADERS, END_STREAM | END_HEADERS, stream 1: GET / (HPACK static indices).
pub const GET_1: [u8; 12] = [0, 0, 3, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84];

pub fn setup(dispatch: Dispatch, tls: TlsProvider) -> Setup {
    Setup {
        dispatch,
        engine: Engine::Mini,
        tls,
    }
}

pub fn config(setup: Setup) -> ServerConfig {
    ServerConfig {
        dispatch: setup.dispatch,
        engine: setup.engine,
        tls: setup.tls,
        ..ServerConfig::default()
    }
}

pub fn start(setup: Setup) -> Server {
    h2lab::start(&config(setup)).unwrap_or_else(|e| panic!("{setup}: {e:#}"))
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A client tool from PATH. A missing tool fails the test: CI must install it.
pub fn tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "the test needs `{name}` on PATH (Debian: apt-get install curl nghttp2-client)"
    );
    Command::new(name)
}

/// No command a test runs may take longer than this.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `cmd` to completion with its output captured; kills it and fails the
/// test past [`COMMAND_TIMEOUT`], so a regression cannot hang the suite.
pub fn run(cmd: &mut Command) -> Output {
    run_within(cmd, COMMAND_TIMEOUT)
}

/// [`run`], for a command that takes longer by design (`limit`).
pub fn run_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Threads of the process `pid` (from /proc).
pub fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

/// User + system CPU time of a process, in clock ticks (`/proc/PID/stat`
/// fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the parenthesised name, which may hold spaces.
    let after = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Times the threads of process `pid` were switched out, summed: each time
/// a thread slept (voluntary) or was preempted. A thread asleep in `poll`
/// adds none however busy the machine is, so this counts wake-ups, not
/// time (`/proc/PID/task/*/status`).
pub fn context_switches(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter_map(|l| {
                    l.strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                })
                .map(|v| v.trim().parse::<u64>().unwrap())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// The kernel's queues of the IPv4 TCP socket from `local` to `remote`
/// (`/proc/net/tcp`): octets sent but not yet acknowledged (or not yet
/// sent: the send queue), and octets received that the program has not
/// read. None when there is no such socket.
pub fn tcp_queues(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Option<(u64, u64)> {
    tcp_socket(local, remote).map(|(_, tx, rx)| (tx, rx))
}

/// Whether the IPv4 TCP socket from `local` to `remote` has been closed by
/// its peer (CLOSE_WAIT) or is gone: the peer has ended the connection.
pub fn closed_by_peer(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> bool {
    const CLOSE_WAIT: u8 = 0x08;
    tcp_socket(local, remote).is_none_or(|(state, _, _)| state == CLOSE_WAIT)
}

/// The state, send queue and receive queue of the IPv4 TCP socket from
/// `local` to `remote` in `/proc/net/tcp`.
fn tcp_socket(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Option<(u8, u64, u64)> {
    let hex = |a: std::net::SocketAddr| match a {
        std::net::SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        other => panic!("{other}: IPv4 only"),
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols[1] != local || cols[2] != remote {
            return None;
        }
        let (tx, rx) = cols[4].split_once(':')?;
        Some((
            u8::from_str_radix(cols[3], 16).ok()?,
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

/// The child processes of `pid` (`/proc/PID/task/*/children`).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Descriptors the process `pid` holds open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The descriptor numbers below `limit` that `pid` holds: what an fd
/// limit of `limit` counts. (A descriptor inherited above it, such as the
/// jobserver pipe cargo may pass down, takes no room.)
pub fn slots_taken(pid: u32, limit: usize) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
        .filter(|&fd| fd < limit)
        .count()
}

/// The connections waiting in the accept queue of the IPv4 TCP listener
/// at `local` (`/proc/net/tcp`: a listening socket's receive queue is its
/// accept queue). None when nothing listens there.
pub fn accept_queue(local: std::net::SocketAddr) -> Option<u64> {
    tcp_queues(local, "0.0.0.0:0".parse().unwrap()).map(|(_, rx)| rx)
}

/// Waits until `state()` holds; `what` names it in the failure. The wait
/// is for a state, not a time: the limit only ends a wait that would never
/// end.
pub fn wait_until(what: &str, mut state: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Resident memory of a process, KiB (`VmRSS` in /proc).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// `h2lab load ARGS`: its exit code, its stdout read as JSON (`Null` when
/// it is not JSON) and its stderr.
pub fn h2lab_load(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = run(Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .arg("load")
        .args(args));
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), json, err)
}

/// `curl` speaking HTTP/2 to the server: prior knowledge for h2c, ALPN for TLS
/// (verified against the development CA).
pub fn curl_h2(server: &Server) -> Output {
    let mut cmd = tool("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "10"]);
    cmd.args(["--write-out", "\n%{http_version}"]);
    if server.setup().tls.is_tls() {
        cmd.arg("--http2")
            .arg("--cacert")
            .arg(repo_path("certs/ca.pem"));
    } else {
        cmd.arg("--http2-prior-knowledge");
    }
    run(cmd.arg(server.url()))
}

/// A GET with curl succeeds over HTTP/2 with exactly the service's body.
pub fn assert_curl_hello(server: &Server) {
    let out = curl_h2(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: curl failed: {}",
        server.setup(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "Hello World\n\n2",
        "{}: body, then HTTP version",
        server.setup()
    );
}

/// A raw byte stream to the server: TCP, or TLS over TCP.
pub enum RawConn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl RawConn {
    pub fn tcp(server: &Server) -> TcpStream {
        Self::tcp_to(server.local_addr())
    }

    fn tcp_to(addr: std::net::SocketAddr) -> TcpStream {
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        sock.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        sock
    }

    /// Connects and, for a TLS server, completes a handshake offering `alpn`.
    pub fn connect_alpn(server: &Server, alpn: &[&[u8]]) -> io::Result<Self> {
        Self::connect_to(server.local_addr(), server.setup().tls.is_tls(), alpn)
    }

    /// [`RawConn::connect_alpn`] to a server known by its address.
    pub fn connect_to(addr: std::net::SocketAddr, tls: bool, alpn: &[&[u8]]) -> io::Result<Self> {
        let sock = Self::tcp_to(addr);
        if !tls {
            return Ok(Self::Plain(sock));
        }
        let conn = rustls::ClientConnection::new(
            tls_client_config(alpn),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let mut stream = rustls::StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(Self::Tls(Box::new(stream)))
    }

    pub fn connect(server: &Server) -> Self {
        Self::connect_alpn(server, &[b"h2"]).expect("TLS handshake")
    }

    /// The client's own address (its end of the TCP connection).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        match self {
            Self::Plain(s) => s.local_addr().unwrap(),
            Self::Tls(s) => s.sock.local_addr().unwrap(),
        }
    }

    /// Stops sending (TCP FIN under TLS too, without close_notify) but keeps
    /// reading.
    pub fn shutdown_write(&mut self) {
        let sock = match self {
            Self::Plain(s) => s,
            Self::Tls(s) => &mut s.sock,
        };
        sock.shutdown(Shutdown::Write).unwrap();
    }

    /// How long a read waits (the TCP socket's receive timeout).
    pub fn set_read_timeout(&self, wait: Duration) {
        let sock = match self {
            Self::Plain(s) => s,
            Self::Tls(s) => &s.sock,
        };
        sock.set_read_timeout(Some(wait)).unwrap();
    }

    /// Reads the server's first frame (its SETTINGS): the server has the
    /// connection and is serving it. Returns the frame header's type.
    pub fn read_server_preface(&mut self) -> u8 {
        let mut head = [0u8; 9];
        self.read_exact(&mut head)
            .expect("the server's SETTINGS: the connection is served");
        let mut payload = vec![0u8; u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize];
        self.read_exact(&mut payload).unwrap();
        head[3]
    }

    /// Everything the server sends until it closes (or the read times out).
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.read(&mut buf) {
                Ok(0) => return all,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    panic!("the server did not close within {IO_TIMEOUT:?}")
                }
                // A reset or a TLS error after the server's last bytes: closed.
                Err(_) => return all,
            }
        }
    }
}

/// A read or write is tried again when interrupted (EINTR): a socket with
/// a receive timeout is not restarted by the kernel after a signal, and a
/// test thread that set up an io_uring ring (the uring probe) can be
/// notified by it. An interrupted read is not an answer from the server.
fn uninterrupted<T>(mut io: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match io() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            done => return done,
        }
    }
}

impl Read for RawConn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        uninterrupted(|| match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        })
    }
}

impl Write for RawConn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        uninterrupted(|| match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
        }
    }
}

/// A rustls client that trusts only the development CA.
pub fn tls_client_config(alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(repo_path("certs/ca.pem")).unwrap();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Splits a byte stream into whole frames; a trailing partial frame is a failure.
pub fn frames(mut data: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut v = Vec::new();
    while !data.is_empty() {
        let head = FrameHeader::parse(data).expect("a whole frame header");
        let end = HEADER_LEN + head.length as usize;
        assert!(data.len() >= end, "partial frame {head:?}");
        v.push((head, data[HEADER_LEN..end].to_vec()));
        data = &data[end..];
    }
    v
}

/// The error code of the last frame, which must be a GOAWAY.
pub fn goaway_reason(data: &[u8]) -> Reason {
    let all = frames(data);
    let (head, payload) = all.last().expect("at least one frame");
    assert_eq!(head.kind, FrameType::GOAWAY, "last frame of {all:?}");
    frame::parse_goaway(payload).expect("GOAWAY payload").1
}

/// The GOAWAY due after bad input, with its code, as the last frame
/// before the close: required of both engines.
pub fn assert_goaway(setup: Setup, reply: &[u8], reason: Reason) {
    assert_eq!(goaway_reason(reply), reason, "{setup}");
}

/// Where RFC 9113 lets a server close without a GOAWAY (a preface that is
/// not one, §3.4; a client that stopped sending mid-frame, so nothing more
/// can be said to it), the `h2` crate does so: its connection closes having
/// sent its SETTINGS and nothing else (`reply` was read to the close). The
/// mini engine sends the GOAWAY all the same, and must.
pub fn assert_goaway_or_bare_close(setup: Setup, reply: &[u8], reason: Reason) {
    match setup.engine {
        Engine::Mini => assert_goaway(setup, reply, reason),
        Engine::H2 => {
            let kinds: Vec<FrameType> = frames(reply).into_iter().map(|(h, _)| h.kind).collect();
            assert!(
                !kinds.is_empty() && kinds.iter().all(|k| *k == FrameType::SETTINGS),
                "{setup}: closed after {kinds:?}"
            );
        }
    }
}

/// The client preface and an empty SETTINGS frame.
pub fn client_hello() -> Vec<u8> {
    [&CLIENT_PREFACE[..], &EMPTY_SETTINGS].concat()
}

/// On a fresh connection, one GET gets `Hello World\n` on stream 1.
pub fn assert_raw_hello(server: &Server) {
    assert_hello_on(RawConn::connect(server), server.setup());
}

/// Over a fresh `conn`, one GET gets `Hello World\n` on stream 1.
pub fn assert_hello_on(mut conn: RawConn, setup: Setup) {
    conn.write_all(&client_hello()).unwrap();
    assert_get_on_open(conn, setup);
}

/// Over `conn`, past its preface already, one GET gets `Hello World\n`.
pub fn assert_get_on_open(mut conn: RawConn, setup: Setup) {
    conn.write_all(&GET_1).unwrap();
    // Then a GOAWAY of our own, so the server closes and we can read all.
    let mut goaway = Vec::new();
    frame::encode_goaway(&mut goaway, 0, Reason::NO_ERROR);
    conn.write_all(&goaway).unwrap();
    let all = frames(&conn.read_to_close());
    let data: Vec<&Vec<u8>> = all
        .iter()
        .filter(|(h, _)| h.kind == FrameType::DATA && h.stream == 1)
        .map(|(_, p)| p)
        .collect();
    assert_eq!(data, [&b"Hello World\n".to_vec()], "{setup}: {all:?}");
}

/// A poll/mini/none server traced to `prefix` with a queue of one record,
/// under `requests` from h2load (4 connections × 10): a trace that dropped
/// records. Returns its configuration and summary.
pub fn lossy_trace(
    prefix: PathBuf,
    requests: u32,
) -> (h2lab::trace::TraceConfig, h2lab::trace::TraceSummary) {
    let trace = h2lab::trace::TraceConfig {
        queue: 1,
        ..h2lab::trace::TraceConfig::new(prefix)
    };
    let server = h2lab::start(&ServerConfig {
        trace: Some(trace.clone()),
        ..config(setup(Dispatch::Poll, TlsProvider::None))
    })
    .unwrap();
    let n = requests.to_string();
    let out = run(tool("h2load")
        .args(["-n", &n, "-c", "4", "-m", "10"])
        .arg(server.url()));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{n} succeeded")));
    let summary = server.stop().trace.unwrap().unwrap();
    assert!(summary.dropped > 0, "{summary}");
    (trace, summary)
}

/// One test per setup for each `fn NAME(Setup)` of the including file: one
/// test body for every backend. `setup_tests!(a, b)` runs `a` and `b` on
/// every supported setup (and checks that list against the library);
/// `setup_tests!(for [poll_mini_none, tokio_h2_rustls] a, b)` on the setups
/// named. Tests are named `TEST::SETUP`, e.g. `a::poll_mini_rustls`: each
/// file may call it more than once.
#[macro_export]
macro_rules! setup_tests {
    (for $setups:tt $($test:ident),* $(,)?) => {
        $( $crate::setup_tests!(@test $test $setups); )*
    };
    (@test $test:ident [$($setup:ident),* $(,)?]) => {
        mod $test {
            $( $crate::setup_tests!(@named $setup, $test); )*
        }
    };
    ($($test:ident),* $(,)?) => {
        $crate::setup_tests!(for [single_mini_none, single_mini_rustls, single_mini_openssl, single_h2_none, single_h2_rustls, single_h2_openssl, thread_mini_none, thread_mini_rustls, thread_mini_openssl, thread_h2_none, thread_h2_rustls, thread_h2_openssl, tokio_mini_none, tokio_mini_rustls, tokio_mini_openssl, tokio_h2_none, tokio_h2_rustls, tokio_h2_openssl, poll_mini_none, poll_mini_rustls, poll_mini_openssl, uring_mini_none, uring_mini_rustls, uring_mini_openssl] $($test),*);

        /// The list above must be exactly what the library supports.
        #[test]
        fn every_supported_setup_is_tested() {
            use h2lab::{Dispatch::*, Engine::*, TlsProvider::*};
            let tested = [
                (Single, Mini, None),
                (Single, Mini, Rustls),
                (Single, Mini, Openssl),
                (Single, H2, None),
                (Single, H2, Rustls),
                (Single, H2, Openssl),
                (Thread, Mini, None),
                (Thread, Mini, Rustls),
                (Thread, Mini, Openssl),
                (Thread, H2, None),
                (Thread, H2, Rustls),
                (Thread, H2, Openssl),
                (Tokio, Mini, None),
                (Tokio, Mini, Rustls),
                (Tokio, Mini, Openssl),
                (Tokio, H2, None),
                (Tokio, H2, Rustls),
                (Tokio, H2, Openssl),
                (Poll, Mini, None),
                (Poll, Mini, Rustls),
                (Poll, Mini, Openssl),
                (Uring, Mini, None),
                (Uring, Mini, Rustls),
                (Uring, Mini, Openssl),
            ].map(|(dispatch, engine, tls)| h2lab::Setup { dispatch, engine, tls });
            assert_eq!(tested.to_vec(), h2lab::Setup::supported());
        }
    };
    (@named single_mini_none, $test:ident) => { $crate::setup_tests!(@one single_mini_none, Single, Mini, None, $test); };
    (@named single_mini_rustls, $test:ident) => { $crate::setup_tests!(@one single_mini_rustls, Single, Mini, Rustls, $test); };
    (@named single_mini_openssl, $test:ident) => { $crate::setup_tests!(@one single_mini_openssl, Single, Mini, Openssl, $test); };
    (@named single_h2_none, $test:ident) => { $crate::setup_tests!(@one single_h2_none, Single, H2, None, $test); };
    (@named single_h2_rustls, $test:ident) => { $crate::setup_tests!(@one single_h2_rustls, Single, H2, Rustls, $test); };
    (@named single_h2_openssl, $test:ident) => { $crate::setup_tests!(@one single_h2_openssl, Single, H2, Openssl, $test); };
    (@named thread_mini_none, $test:ident) => { $crate::setup_tests!(@one thread_mini_none, Thread, Mini, None, $test); };
    (@named thread_mini_rustls, $test:ident) => { $crate::setup_tests!(@one thread_mini_rustls, Thread, Mini, Rustls, $test); };
    (@named thread_mini_openssl, $test:ident) => { $crate::setup_tests!(@one thread_mini_openssl, Thread, Mini, Openssl, $test); };
    (@named thread_h2_none, $test:ident) => { $crate::setup_tests!(@one thread_h2_none, Thread, H2, None, $test); };
    (@named thread_h2_rustls, $test:ident) => { $crate::setup_tests!(@one thread_h2_rustls, Thread, H2, Rustls, $test); };
    (@named thread_h2_openssl, $test:ident) => { $crate::setup_tests!(@one thread_h2_openssl, Thread, H2, Openssl, $test); };
    (@named tokio_mini_none, $test:ident) => { $crate::setup_tests!(@one tokio_mini_none, Tokio, Mini, None, $test); };
    (@named tokio_mini_rustls, $test:ident) => { $crate::setup_tests!(@one tokio_mini_rustls, Tokio, Mini, Rustls, $test); };
    (@named tokio_mini_openssl, $test:ident) => { $crate::setup_tests!(@one tokio_mini_openssl, Tokio, Mini, Openssl, $test); };
    (@named tokio_h2_none, $test:ident) => { $crate::setup_tests!(@one tokio_h2_none, Tokio, H2, None, $test); };
    (@named tokio_h2_rustls, $test:ident) => { $crate::setup_tests!(@one tokio_h2_rustls, Tokio, H2, Rustls, $test); };
    (@named tokio_h2_openssl, $test:ident) => { $crate::setup_tests!(@one tokio_h2_openssl, Tokio, H2, Openssl, $test); };
    (@named poll_mini_none, $test:ident) => { $crate::setup_tests!(@one poll_mini_none, Poll, Mini, None, $test); };
    (@named poll_mini_rustls, $test:ident) => { $crate::setup_tests!(@one poll_mini_rustls, Poll, Mini, Rustls, $test); };
    (@named poll_mini_openssl, $test:ident) => { $crate::setup_tests!(@one poll_mini_openssl, Poll, Mini, Openssl, $test); };
    (@named uring_mini_none, $test:ident) => { $crate::setup_tests!(@one uring_mini_none, Uring, Mini, None, $test); };
    (@named uring_mini_rustls, $test:ident) => { $crate::setup_tests!(@one uring_mini_rustls, Uring, Mini, Rustls, $test); };
    (@named uring_mini_openssl, $test:ident) => { $crate::setup_tests!(@one uring_mini_openssl, Uring, Mini, Openssl, $test); };
    (@one $name:ident, $dispatch:ident, $engine:ident, $tls:ident, $test:ident) => {
        #[test]
        fn $name() {
            if h2lab::Dispatch::$dispatch == h2lab::Dispatch::Uring && $crate::support::skip_uring() {
                return;
            }
            super::$test(h2lab::Setup {
                dispatch: h2lab::Dispatch::$dispatch,
                engine: h2lab::Engine::$engine,
                tls: h2lab::TlsProvider::$tls,
            });
        }
    };
}

/// Whether the calling test (named by its thread, as the test harness
/// names it) must not run because the system refuses io_uring (the
/// sysctl, a seccomp filter, no io_uring in the kernel): then it is said
/// on stderr and counted in `.ci/run`'s closing line. Anything else that
/// keeps our ring from being set up fails the test, and under `CI=true`
/// with io_uring enabled so does a refusal (`h2lab::server::uring_skip_test`).
pub fn skip_uring() -> bool {
    h2lab::server::uring_skip_test()
}

/// A `h2lab serve` child process and the URL from its one stdout line.
/// Killed on drop, so a failing test leaves nothing running.
pub struct Serving {
    pub child: std::process::Child,
    pub url: String,
}

pub fn serve(args: &[&str]) -> Serving {
    serve_command(
        Command::new(env!("CARGO_BIN_EXE_h2lab"))
            .arg("serve")
            .args(args),
    )
}

/// `h2lab serve` for `setup` with `args`, under a 4 GiB address-space
/// limit: a server whose memory runs away fails its test at once instead
/// of taking the machine's memory.
pub fn serve_capped(setup: Setup, args: &[&str]) -> Serving {
    serve_command(
        Command::new("prlimit")
            .arg(format!("--as={}", 4u64 << 30))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_h2lab"))
            .arg("serve")
            .args(["--dispatch", &setup.dispatch.to_string()])
            .args(["--engine", &setup.engine.to_string()])
            .args(["--tls", &setup.tls.to_string()])
            .args(args),
    )
}

/// Starts `cmd`, an `h2lab serve` command line (under a wrapper such as
/// `prlimit`, or another binary), and waits for its `listening on` line.
pub fn serve_command(cmd: &mut Command) -> Serving {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn h2lab serve");
    let mut line = String::new();
    io::BufRead::read_line(
        &mut io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let Some(url) = line.strip_prefix("listening on ") else {
        let _ = child.kill();
        panic!("first line: {line:?}");
    };
    assert!(line.ends_with("/\n"), "{line:?}");
    let url = url.trim_end().to_string();
    Serving { child, url }
}

impl Serving {
    /// `host:port` of the URL.
    pub fn addr(&self) -> std::net::SocketAddr {
        let rest = self.url.split_once("://").unwrap().1;
        rest.trim_end_matches('/').parse().unwrap()
    }

    /// Sends `signal`, waits (bounded) for the exit, returns the output.
    pub fn stop_with(mut self, signal: &str) -> Output {
        let pid = self.child.id().to_string();
        let status = run(Command::new("kill").args(["-s", signal, &pid])).status;
        assert!(status.success(), "kill -s {signal}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "h2lab serve did not exit within 5 s of SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = Output {
            status: self.child.try_wait().unwrap().unwrap(),
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        if let Some(mut s) = self.child.stdout.take() {
            let _ = s.read_to_end(&mut out.stdout);
        }
        if let Some(mut s) = self.child.stderr.take() {
            let _ = s.read_to_end(&mut out.stderr);
        }
        out
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The trace processor from `shared/tools`. Missing is a failure.
pub fn trace_processor() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/trace_processor_shell");
    assert!(
        path.is_file(),
        "{} missing (it ships in shared/tools; it needs the Debian packages libprotobuf32 libsqlite3-0)",
        path.display()
    );
    path
}

/// Runs one SQL query on `trace`; returns the result's rows as strings,
/// header first.
pub fn trace_query(trace: &Path, sql: &str) -> Vec<Vec<String>> {
    trace_query_with(&[], trace, sql)
}

/// [`trace_query`] with more of the trace processor's flags first (such
/// as `--add-sql-package DIR`).
pub fn trace_query_with(flags: &[&std::ffi::OsStr], trace: &Path, sql: &str) -> Vec<Vec<String>> {
    let out = run(Command::new(trace_processor())
        .arg("query")
        .args(flags)
        .arg(trace)
        .arg(sql));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "trace_processor_shell failed on {}: {}{}",
        trace.display(),
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(stdout.as_bytes());
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// One row of named columns.
pub fn one_row(trace: &Path, sql: &str) -> std::collections::BTreeMap<String, String> {
    let rows = trace_query(trace, sql);
    assert_eq!(rows.len(), 2, "{sql}: {rows:?}");
    rows[0]
        .iter()
        .cloned()
        .zip(rows[1].iter().cloned())
        .collect()
}
