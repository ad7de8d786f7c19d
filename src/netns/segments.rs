//! Each side's own TCP segments: the sockets' `TCP_INFO` (`tcpi_segs_in`,
//! `tcpi_segs_out`), read for every established socket of one side with
//! iproute2's `ss -ti`, which asks the kernel over sock_diag netlink (any
//! process's sockets, our servers' and the peers', h2load's and ours
//! alike). Run in the side's network namespace (see [`super::Net`]).

use std::process::Command;

/// Segments one side's sockets received and sent so far, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segments {
    pub received: u64,
    pub sent: u64,
}

/// Which sockets: the server's (local port `port`) or its clients'
/// (remote port `port`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// Whether `ss` runs here (`Err`: why not, and what to install).
pub fn usable() -> Result<(), String> {
    match Command::new("ss").arg("-V").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "ss -V: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run ss ({e}): apt-get install iproute2")),
    }
}

impl Segments {
    /// The established sockets of `side` for the server's `port`, in this
    /// thread's network namespace.
    pub fn of(side: Side, port: u16) -> Result<Segments, String> {
        let key = match side {
            Side::Server => "sport",
            Side::Client => "dport",
        };
        let out = Command::new("ss")
            .args(["-tinH", "state", "established", key, "="])
            .arg(format!(":{port}"))
            .output()
            .map_err(|e| format!("cannot run ss ({e}): apt-get install iproute2"))?;
        if !out.status.success() {
            return Err(format!(
                "ss: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(parse(&String::from_utf8_lossy(&out.stdout)))
    }

    /// What happened from `self` to `later` (sockets that closed between
    /// take their counts with them: read both while the connections live).
    pub fn since(self, later: Segments) -> Segments {
        Segments {
            received: later.received.saturating_sub(self.received),
            sent: later.sent.saturating_sub(self.sent),
        }
    }
}

/// Sums `segs_in:N` and `segs_out:N` over `ss -ti`'s lines (it leaves a
/// zero count out).
fn parse(text: &str) -> Segments {
    let mut s = Segments::default();
    for word in text.split_whitespace() {
        let count = |prefix: &str| word.strip_prefix(prefix)?.parse::<u64>().ok();
        if let Some(n) = count("segs_in:") {
            s.received += n;
        } else if let Some(n) = count("segs_out:") {
            s.sent += n;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_summed_over_sockets() {
        let text = "0 0 127.0.0.1:8080 127.0.0.1:4790\n\t bbr cwnd:10 segs_out:7 segs_in:2 data_segs_in:1 send 1bps\n\
                    0 0 127.0.0.1:8080 127.0.0.1:4791\n\t bbr cwnd:10 segs_in:5 lastsnd:3\n";
        assert_eq!(
            parse(text),
            Segments {
                received: 7,
                sent: 7
            }
        );
        assert_eq!(parse(""), Segments::default());
    }

    #[test]
    fn a_difference_never_goes_below_zero() {
        let a = Segments {
            received: 10,
            sent: 3,
        };
        let b = Segments {
            received: 25,
            sent: 2,
        };
        assert_eq!(
            a.since(b),
            Segments {
                received: 15,
                sent: 0
            }
        );
    }

    /// A real socket pair: the server side's sent segments are the client
    /// side's received ones (loopback loses none).
    #[test]
    fn a_connection_is_seen_from_both_sides() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.set_nodelay(true).unwrap();
        // Three segments from the server for one from the client.
        let mut exchange = || {
            for _ in 0..3 {
                server.write_all(b"ping").unwrap();
                client.read_exact(&mut [0; 4]).unwrap();
            }
            client.write_all(b"pong").unwrap();
            server.read_exact(&mut [0; 4]).unwrap();
        };
        // The handshake's segments are counted on one side only (the
        // server's socket is made after its SYN-ACK): differences only.
        exchange();
        let (s0, c0) = (
            Segments::of(Side::Server, port).unwrap(),
            Segments::of(Side::Client, port).unwrap(),
        );
        for _ in 0..20 {
            exchange();
        }
        let (s1, c1) = (
            Segments::of(Side::Server, port).unwrap(),
            Segments::of(Side::Client, port).unwrap(),
        );
        let (s, c) = (s0.since(s1), c0.since(c1));
        assert!(
            s.sent >= 60 && c.sent >= 20 && c.sent < s.sent,
            "{s:?} {c:?}"
        );
        // A delayed ACK may go between two readings.
        assert!(s.sent.abs_diff(c.received) <= 1, "{s:?} {c:?}");
        assert!(c.sent.abs_diff(s.received) <= 1, "{s:?} {c:?}");
    }
}
