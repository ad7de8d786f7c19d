//! Where a bench's server and its load meet, and whose kernel work each
//! side's CPU did there.
//!
//! Three topologies ([`Topology`]): `loopback` (the default: each side's
//! send runs the other side's receive on the sender's CPU), `rfs` (the
//! same with receive flow steering, [`rfs`]), and `veth`: two network
//! namespaces the run makes, `h2lab-PID-srv` for the server and
//! `h2lab-PID-cli` for the load, joined by a veth pair whose addresses
//! (198.18.0.1 and .2, from the range RFC 2544 reserves for benchmarks)
//! exist only inside them, with no route out; each end's receive is
//! steered (RPS) to its own side's pinned CPUs, and a [`link::Link`] may
//! shape both directions. Made with iproute2 (`ip`, `tc`), the commands a
//! user would type; undone when the [`Net`] is dropped (a normal end, an
//! error, SIGINT or SIGTERM: the commands return and drop it), and a
//! leftover of a run killed outright is found by its pid and removed at
//! the next start.
//!
//! A thread joins a side with [`Net::within`] (setns on itself); the
//! children and threads it starts there stay there.
//!
//! [`softnet`] and [`segments`] count each CPU's and each side's packets;
//! [`attribution`] divides them per request. Nothing here imports the
//! rest of the crate.

pub mod attribution;
pub mod link;
pub mod rfs;
pub mod segments;
pub mod softnet;

use std::fmt;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use attribution::Snapshot;
use link::Link;
use segments::{Segments, Side};
use softnet::Softnet;

/// Where runs keep what they must undo.
pub const STATE_DIR: &str = "/run/h2lab";
/// The veth pair's two ends.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// Names of what a run makes start with this, then its pid.
const PREFIX: &str = "h2lab-";

/// How the server and the load are joined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// 127.0.0.1: each side's send runs the other's receive on its CPU.
    #[default]
    Loopback,
    /// Loopback with receive flow steering: each socket's receive on the
    /// CPU of the thread that reads it (at an interrupt between CPUs).
    Rfs,
    /// A namespace for each side, joined by a veth pair; each end's
    /// receive steered to its own side's CPUs.
    Veth,
}

impl Topology {
    pub fn name(self) -> &'static str {
        match self {
            Topology::Loopback => "loopback",
            Topology::Rfs => "rfs",
            Topology::Veth => "veth",
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("--net {0} needs CAP_NET_ADMIN and CAP_SYS_ADMIN (run it as root): it {1}")]
    NoPrivilege(Topology, &'static str),
    #[error("--net {0} steers each side's receive to its own CPUs: it needs the server and the load pinned apart (drop --no-pin)")]
    NoPins(Topology),
    #[error("--link shapes the veth pair between the sides: it needs --net veth")]
    LinkWithoutVeth,
    #[error("--link delay= and loss= need the kernel's netem qdisc, which this kernel lacks (sch_netem, CONFIG_NET_SCH_NETEM is not set); rate= works without it")]
    NoNetem,
    #[error("--net rfs: another run (pid {0}) has receive steering set; wait for it")]
    Busy(u32),
    #[error("{0}: {1}")]
    Command(String, String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

impl NetError {
    fn io(path: impl AsRef<Path>, e: std::io::Error) -> NetError {
        NetError::Io(path.as_ref().display().to_string(), e)
    }

    /// A refusal at the start (exit 2), not a failure while running.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            NetError::NoPrivilege(..)
                | NetError::NoPins(_)
                | NetError::LinkWithoutVeth
                | NetError::NoNetem
        )
    }
}

/// What a run asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetSpec {
    pub topology: Topology,
    pub link: Link,
    /// The CPUs the server and the load are pinned to (empty: not pinned).
    pub server_cpus: Vec<usize>,
    pub client_cpus: Vec<usize>,
}

/// The topology of a run, made; undone when dropped.
#[derive(Debug)]
pub struct Net {
    spec: NetSpec,
    /// Whether each side's segments can be read (`ss`); `Err`: why not.
    segments: Result<(), String>,
    veth: Option<Veth>,
    _rfs: Option<rfs::Rfs>,
}

/// The two namespaces and the veth pair between them.
#[derive(Debug)]
struct Veth {
    server_ns: String,
    client_ns: String,
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and with it
        // the pair and its qdiscs.
        for ns in [&self.server_ns, &self.client_ns] {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("h2lab: cannot remove the network namespace {ns}: {e}");
            }
        }
    }
}

impl Net {
    /// Makes what `spec` asks for, after removing what killed runs left.
    pub fn set_up(spec: NetSpec) -> Result<Net, NetError> {
        if spec.link.is_shaped() && spec.topology != Topology::Veth {
            return Err(NetError::LinkWithoutVeth);
        }
        let pinned = !spec.server_cpus.is_empty() && !spec.client_cpus.is_empty();
        let (mut veth, mut rfs) = (None, None);
        match spec.topology {
            Topology::Loopback => {}
            Topology::Rfs => {
                privileged(Topology::Rfs, "sets the kernel's receive steering")?;
                if !pinned {
                    return Err(NetError::NoPins(Topology::Rfs));
                }
                let mut cpus = [spec.server_cpus.clone(), spec.client_cpus.clone()].concat();
                cpus.sort_unstable();
                cpus.dedup();
                rfs = Some(rfs::Rfs::set(&cpus)?);
            }
            Topology::Veth => {
                privileged(Topology::Veth, "makes network namespaces and a veth pair")?;
                if !pinned {
                    return Err(NetError::NoPins(Topology::Veth));
                }
                sweep();
                veth = Some(make_veth(&spec)?);
            }
        }
        Ok(Net {
            spec,
            segments: segments::usable(),
            veth,
            _rfs: rfs,
        })
    }

    pub fn spec(&self) -> &NetSpec {
        &self.spec
    }

    /// Whether a run's counts can be read: the sides pinned apart, and
    /// `ss` there (`Err`: why not; loopback runs without them).
    pub fn counted(&self) -> Result<(), String> {
        if self.spec.server_cpus.is_empty() || self.spec.client_cpus.is_empty() {
            return Err("the server and the load are not pinned apart".into());
        }
        self.segments.clone()
    }

    /// The address the server binds and the load connects to.
    pub fn server_host(&self) -> IpAddr {
        match self.veth {
            Some(_) => IpAddr::V4(SERVER_ADDR),
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// Runs `f` on this thread inside `side`'s namespace (children it
    /// spawns and threads it starts stay there), then returns the thread
    /// to where it was. Without namespaces, just runs `f`.
    pub fn within<T>(&self, side: Side, f: impl FnOnce() -> T) -> Result<T, NetError> {
        let Some(veth) = &self.veth else {
            return Ok(f());
        };
        let ns = match side {
            Side::Server => &veth.server_ns,
            Side::Client => &veth.client_ns,
        };
        let _back = Entered::enter(&Path::new("/run/netns").join(ns))?;
        Ok(f())
    }

    /// Every CPU's softirq counts, and each side's segments for the
    /// server's `port`, now.
    pub fn snapshot(&self, port: u16) -> Result<Snapshot, String> {
        let softnet = Softnet::read().map_err(|e| e.to_string())?;
        let side = |side| {
            self.within(side, || Segments::of(side, port))
                .map_err(|e| e.to_string())?
        };
        Ok(Snapshot {
            softnet,
            server: side(Side::Server)?,
            client: side(Side::Client)?,
        })
    }

    /// One line for the start of a run.
    pub fn describe(&self) -> String {
        let s = &self.spec;
        match s.topology {
            Topology::Loopback => "loopback (127.0.0.1)".into(),
            Topology::Rfs => format!(
                "loopback with receive flow steering to CPUs {:?} (restored after)",
                [s.server_cpus.clone(), s.client_cpus.clone()].concat()
            ),
            Topology::Veth => format!(
                "veth: the server at {SERVER_ADDR} in a namespace of its own, the load at {CLIENT_ADDR} in another, each end's receive on its side's CPUs ({:?} and {:?}); link {}",
                s.server_cpus, s.client_cpus, s.link
            ),
        }
    }
}

/// A thread inside another namespace; put back where it was when dropped.
struct Entered(File);

impl Entered {
    fn enter(path: &Path) -> Result<Entered, NetError> {
        let here = "/proc/thread-self/ns/net";
        let back = File::open(here).map_err(|e| NetError::io(here, e))?;
        let target = File::open(path).map_err(|e| NetError::io(path, e))?;
        setns(&target).map_err(|e| NetError::io(path, e))?;
        Ok(Entered(back))
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        // The namespace it came from exists while this process does.
        if let Err(e) = setns(&self.0) {
            panic!("cannot return this thread to its network namespace: {e}");
        }
    }
}

fn setns(ns: &File) -> std::io::Result<()> {
    use std::os::fd::AsFd;
    rustix::thread::move_into_link_name_space(
        ns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(std::io::Error::from)
}

/// The namespaces, the pair, the addresses, the steering, the link.
fn make_veth(spec: &NetSpec) -> Result<Veth, NetError> {
    let pid = std::process::id();
    let veth = Veth {
        server_ns: format!("{PREFIX}{pid}-srv"),
        client_ns: format!("{PREFIX}{pid}-cli"),
    };
    // Interface names are 15 octets at most.
    let (sdev, cdev) = (format!("h2l{pid}s"), format!("h2l{pid}c"));
    let (sns, cns) = (veth.server_ns.as_str(), veth.client_ns.as_str());
    ip(&["netns", "add", sns])?;
    ip(&["netns", "add", cns])?;
    ip(&[
        "link", "add", &sdev, "netns", sns, "type", "veth", "peer", "name", &cdev, "netns", cns,
    ])?;
    for (ns, dev, addr, cpus) in [
        (sns, &sdev, SERVER_ADDR, &spec.server_cpus),
        (cns, &cdev, CLIENT_ADDR, &spec.client_cpus),
    ] {
        ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "link", "set", dev, "up"])?;
        // /sys shows a namespace's devices only to a process that mounted
        // it there: `ip netns exec` does.
        let rps = format!("/sys/class/net/{dev}/queues/rx-0/rps_cpus");
        run(Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c"])
            .arg(format!("echo {} > {rps}", cpu_mask(cpus))))?;
        if let Some(words) = spec.link.qdisc() {
            let mut tc = Command::new("tc");
            tc.args(["-n", ns, "qdisc", "add", "dev", dev, "root"])
                .args(&words);
            match run(&mut tc) {
                Err(NetError::Command(_, said)) if said.contains("qdisc kind is unknown") => {
                    return Err(NetError::NoNetem)
                }
                other => other?,
            }
        }
    }
    Ok(veth)
}

/// Removes the namespaces of runs that are gone (killed before they could).
pub fn sweep() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = leftover_pid(&name) else {
            continue;
        };
        if pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        match ip(&["netns", "del", &name]) {
            Ok(()) => eprintln!("h2lab: removed {name}, left by a killed run (pid {pid})"),
            Err(e) => eprintln!("h2lab: cannot remove {name}: {e}"),
        }
    }
}

/// `h2lab-PID-srv` or `h2lab-PID-cli`: the PID.
fn leftover_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let pid = rest
        .strip_suffix("-srv")
        .or_else(|| rest.strip_suffix("-cli"))?;
    (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        .then(|| pid.parse().ok())
        .flatten()
}

/// The network namespaces this machine has that runs made (for tests
/// that check none is left).
pub fn made_by_runs() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| leftover_pid(n).is_some())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a process `pid` runs and is an h2lab (a recycled pid is not).
fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| comm.trim_end().starts_with("h2lab"))
}

/// A CPU list as the kernel's hexadecimal mask (32-bit groups, commas
/// between, the highest first).
pub fn cpu_mask(cpus: &[usize]) -> String {
    let top = cpus.iter().max().map_or(0, |&c| c / 32);
    let mut groups = vec![0u32; top + 1];
    for &c in cpus {
        groups[c / 32] |= 1 << (c % 32);
    }
    let text: Vec<String> = groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| match i {
            0 => format!("{g:x}"),
            _ => format!("{g:08x}"),
        })
        .collect();
    text.join(",")
}

/// CAP_NET_ADMIN and CAP_SYS_ADMIN in this process's effective set.
fn privileged(topology: Topology, what: &'static str) -> Result<(), NetError> {
    const NET_ADMIN: u32 = 12;
    const SYS_ADMIN: u32 = 21;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    match eff & (1 << NET_ADMIN) != 0 && eff & (1 << SYS_ADMIN) != 0 {
        true => Ok(()),
        false => Err(NetError::NoPrivilege(topology, what)),
    }
}

fn ip(args: &[&str]) -> Result<(), NetError> {
    run(Command::new("ip").args(args))
}

/// Runs a command; its first line of complaint is the error.
fn run(cmd: &mut Command) -> Result<(), NetError> {
    let line = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd
        .output()
        .map_err(|e| NetError::Command(line.clone(), format!("{e} (apt-get install iproute2)")))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(NetError::Command(
            line,
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )),
    }
}

/// How this kernel charges the time of softirqs (the receive processing),
/// from its build configuration (`/proc/config.gz`, else
/// `/boot/config-RELEASE`): it decides what a process's CPU time holds.
pub fn softirq_accounting() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let config = Command::new("zcat")
        .arg("/proc/config.gz")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .or_else(|| std::fs::read_to_string(format!("/boot/config-{}", release.trim())).ok());
    match config {
        Some(c) => accounting(&c),
        None => "unknown (no /proc/config.gz or /boot/config-RELEASE)".into(),
    }
}

fn accounting(config: &str) -> String {
    let set = |key: &str| config.lines().any(|l| l == format!("{key}=y"));
    let hz = config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_HZ="))
        .unwrap_or("?");
    let how = match (
        set("CONFIG_VIRT_CPU_ACCOUNTING_GEN"),
        set("CONFIG_TICK_CPU_ACCOUNTING"),
    ) {
        (true, _) => "precise (context-tracking) accounting".to_string(),
        (false, true) => format!("tick accounting at {hz} Hz"),
        _ => format!("{hz} Hz"),
    };
    match set("CONFIG_IRQ_TIME_ACCOUNTING") {
        true => format!("{how}, CONFIG_IRQ_TIME_ACCOUNTING: softirq time is charged to no task, so a process's CPU time leaves out the receive work its CPU did"),
        false => format!("{how}, no CONFIG_IRQ_TIME_ACCOUNTING: a softirq is charged to the task it interrupted, so a process's CPU time holds the receive work its CPU did while it ran"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softirq_time_is_said_as_the_kernel_charges_it() {
        let tick = "CONFIG_TICK_CPU_ACCOUNTING=y\n# CONFIG_IRQ_TIME_ACCOUNTING is not set\nCONFIG_HZ=250\n";
        let said = accounting(tick);
        assert!(
            said.starts_with("tick accounting at 250 Hz, no CONFIG_IRQ"),
            "{said}"
        );
        let irq =
            "CONFIG_VIRT_CPU_ACCOUNTING_GEN=y\nCONFIG_IRQ_TIME_ACCOUNTING=y\nCONFIG_HZ=1000\n";
        let said = accounting(irq);
        assert!(said.starts_with("precise"), "{said}");
        assert!(said.contains("charged to no task"), "{said}");
        assert!(!softirq_accounting().is_empty());
    }

    #[test]
    fn masks_are_the_kernels() {
        assert_eq!(cpu_mask(&[0]), "1");
        assert_eq!(cpu_mask(&[0, 1]), "3");
        assert_eq!(cpu_mask(&[1, 3]), "a");
        assert_eq!(cpu_mask(&[31]), "80000000");
        assert_eq!(cpu_mask(&[0, 32]), "1,00000001");
        assert_eq!(cpu_mask(&[]), "0");
    }

    #[test]
    fn leftovers_are_known_by_name() {
        assert_eq!(leftover_pid("h2lab-1234-srv"), Some(1234));
        assert_eq!(leftover_pid("h2lab-1234-cli"), Some(1234));
        for other in [
            "h2lab--srv",
            "h2lab-12a-srv",
            "h2lab-1234",
            "other-1-srv",
            "h2lab-1-x",
        ] {
            assert_eq!(leftover_pid(other), None, "{other}");
        }
    }

    #[test]
    fn a_link_needs_veth_and_refusals_are_refusals() {
        let spec = NetSpec {
            link: Link::parse("rate=1gbit").unwrap(),
            ..NetSpec::default()
        };
        let e = Net::set_up(spec).unwrap_err();
        assert!(
            matches!(e, NetError::LinkWithoutVeth) && e.is_refusal(),
            "{e}"
        );
        assert!(!NetError::Busy(1).is_refusal());
    }

    #[test]
    fn loopback_makes_nothing_and_runs_in_place() {
        let net = Net::set_up(NetSpec::default()).unwrap();
        assert_eq!(net.server_host(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(net.within(Side::Client, || 7).unwrap(), 7);
        // Not pinned apart: nothing to attribute to a side.
        assert!(net.counted().unwrap_err().contains("pinned"));
        let pinned = Net::set_up(NetSpec {
            server_cpus: vec![0],
            client_cpus: vec![1],
            ..NetSpec::default()
        })
        .unwrap();
        assert_eq!(pinned.counted(), Ok(()));
    }
}
