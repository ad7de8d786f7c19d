//! Whose kernel work each side's CPU did, per request: the packets the
//! server's CPUs and the load's CPUs processed in their softirqs, the
//! steering interrupts each received, and each side's own segments in and
//! out, all over the same window.

use serde::{Deserialize, Serialize};

use super::segments::Segments;
use super::softnet::Softnet;
use super::Topology;

/// Everything counted at one moment of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub softnet: Softnet,
    pub server: Segments,
    pub client: Segments,
}

/// Per request, over a window of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    /// Packets the server's CPUs processed in their receive softirqs.
    pub server_cpu_packets: f64,
    /// Packets the load's CPUs processed.
    pub client_cpu_packets: f64,
    /// Steering interrupts (RPS/RFS hand-overs) the server's CPUs received.
    pub server_cpu_steered: f64,
    pub client_cpu_steered: f64,
    /// The server's sockets' own segments, received and sent.
    pub server_segs_in: f64,
    pub server_segs_out: f64,
    /// The load's sockets' own segments.
    pub client_segs_in: f64,
    pub client_segs_out: f64,
    /// The share of the packets the server's CPUs processed that were the
    /// load's (its incoming segments), from 0 to 1, by where the kernel
    /// processes a packet in the topology: on loopback, on the CPU that
    /// sent it, so the load's packets there are the ones the server sent
    /// (its segments out); with steering (`rfs`, `veth`), on the
    /// receiver's, so they are what the server's CPUs processed beyond
    /// the server's own incoming segments. `tests/net.rs` checks each
    /// rule against the counts.
    pub client_share: f64,
}

impl Attribution {
    /// From `a` to `b`, for `server_cpus` and `client_cpus`, divided by the
    /// requests the window held (`None` if none).
    pub fn between(
        a: &Snapshot,
        b: &Snapshot,
        topology: Topology,
        server_cpus: &[usize],
        client_cpus: &[usize],
        requests: f64,
    ) -> Option<Attribution> {
        if requests <= 0.0 || !requests.is_finite() {
            return None;
        }
        let srv = a.softnet.since(&b.softnet, server_cpus);
        let cli = a.softnet.since(&b.softnet, client_cpus);
        let server = a.server.since(b.server);
        let client = a.client.since(b.client);
        let per = |n: u64| n as f64 / requests;
        let clients = match topology {
            Topology::Loopback => server.sent.min(srv.processed),
            Topology::Rfs | Topology::Veth => srv.processed.saturating_sub(server.received),
        };
        let share = match srv.processed {
            0 => 0.0,
            p => clients as f64 / p as f64,
        };
        Some(Attribution {
            server_cpu_packets: per(srv.processed),
            client_cpu_packets: per(cli.processed),
            server_cpu_steered: per(srv.steered_in),
            client_cpu_steered: per(cli.steered_in),
            server_segs_in: per(server.received),
            server_segs_out: per(server.sent),
            client_segs_in: per(client.received),
            client_segs_out: per(client.sent),
            client_share: share,
        })
    }

    /// Each figure's median over `all` (`None` if empty).
    pub fn median(all: &[Attribution]) -> Option<Attribution> {
        if all.is_empty() {
            return None;
        }
        let m = |f: fn(&Attribution) -> f64| {
            let mut v: Vec<f64> = all.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            match n % 2 {
                1 => v[n / 2],
                _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
            }
        };
        Some(Attribution {
            server_cpu_packets: m(|a| a.server_cpu_packets),
            client_cpu_packets: m(|a| a.client_cpu_packets),
            server_cpu_steered: m(|a| a.server_cpu_steered),
            client_cpu_steered: m(|a| a.client_cpu_steered),
            server_segs_in: m(|a| a.server_segs_in),
            server_segs_out: m(|a| a.server_segs_out),
            client_segs_in: m(|a| a.client_segs_in),
            client_segs_out: m(|a| a.client_segs_out),
            client_share: m(|a| a.client_share),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::softnet::CpuNet;
    use super::*;

    fn snap(
        cpu0: (u64, u64),
        cpu1: (u64, u64),
        server: (u64, u64),
        client: (u64, u64),
    ) -> Snapshot {
        let cpu = |(processed, steered_in)| CpuNet {
            processed,
            steered_in,
        };
        Snapshot {
            softnet: Softnet([(0, cpu(cpu0)), (1, cpu(cpu1))].into_iter().collect()),
            server: Segments {
                received: server.0,
                sent: server.1,
            },
            client: Segments {
                received: client.0,
                sent: client.1,
            },
        }
    }

    /// Loopback, 1 MiB answers: the server's CPU processed what it sent
    /// (the client's incoming data, 20 a request) and 2 of the ACKs the
    /// client sent from there.
    #[test]
    fn loopback_puts_the_clients_receive_on_the_servers_cpu() {
        let a = snap((1000, 0), (500, 0), (100, 100), (100, 100));
        let b = snap(
            (1000 + 2200, 0),
            (500 + 500, 0),
            (100 + 700, 100 + 2000),
            (100 + 2000, 100 + 700),
        );
        let at = Attribution::between(&a, &b, Topology::Loopback, &[0], &[1], 100.0).unwrap();
        assert_eq!(at.server_cpu_packets, 22.0);
        assert_eq!(at.client_cpu_packets, 5.0);
        assert_eq!(at.server_segs_in, 7.0);
        assert_eq!(at.server_segs_out, 20.0);
        assert_eq!(at.client_segs_in, 20.0);
        assert_eq!(at.client_share, 20.0 / 22.0);
        assert_eq!(at.server_cpu_steered, 0.0);
        // Steered, the same counts would say the server's CPU processed
        // its 7 and 15 of the client's.
        let steered = Attribution::between(&a, &b, Topology::Veth, &[0], &[1], 100.0).unwrap();
        assert_eq!(steered.client_share, 15.0 / 22.0);
    }

    /// Steered: the server's CPU processed its own 7, no more.
    #[test]
    fn steering_leaves_the_server_its_own() {
        let a = snap((0, 0), (0, 0), (0, 0), (0, 0));
        let b = snap((700, 650), (2200, 2100), (700, 2200), (2200, 700));
        let at = Attribution::between(&a, &b, Topology::Rfs, &[0], &[1], 100.0).unwrap();
        assert_eq!(at.client_share, 0.0);
        assert_eq!(at.server_cpu_steered, 6.5);
        assert_eq!(at.client_cpu_steered, 21.0);
        assert_eq!(at.server_segs_out, 22.0);
        assert_eq!(at.client_segs_out, 7.0);
        // Both CPUs on one side: all of it.
        let both = Attribution::between(&a, &b, Topology::Veth, &[0, 1], &[], 100.0).unwrap();
        assert_eq!(both.server_cpu_packets, 29.0);
        assert_eq!(both.client_cpu_packets, 0.0);
    }

    #[test]
    fn no_request_no_figures() {
        let a = Snapshot::default();
        assert_eq!(
            Attribution::between(&a, &a, Topology::Loopback, &[0], &[1], 0.0),
            None
        );
        assert_eq!(
            Attribution::between(&a, &a, Topology::Loopback, &[0], &[1], f64::NAN),
            None
        );
        let none = Attribution::between(&a, &a, Topology::Loopback, &[0], &[1], 5.0).unwrap();
        assert_eq!(none, Attribution::default());
    }

    #[test]
    fn medians_are_taken_figure_by_figure() {
        let at = |x: f64, y: f64| Attribution {
            server_cpu_packets: x,
            client_share: y,
            ..Attribution::default()
        };
        let m = Attribution::median(&[at(1.0, 0.9), at(3.0, 0.1), at(2.0, 0.5)]).unwrap();
        assert_eq!((m.server_cpu_packets, m.client_share), (2.0, 0.5));
        let m = Attribution::median(&[at(1.0, 0.0), at(4.0, 1.0)]).unwrap();
        assert_eq!(m.server_cpu_packets, 2.5);
        assert_eq!(Attribution::median(&[]), None);
    }
}
