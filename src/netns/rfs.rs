//! `--net rfs`: loopback with receive flow steering, so that a socket's
//! receive processing runs on the CPU of the thread that reads it: the
//! flow table (`net.core.rps_sock_flow_entries`), `lo`'s per-queue flow
//! count and the CPUs it may steer to. Set for the run, restored after;
//! what was there before is kept in a state file of the run's own
//! (`/run/h2lab/rfs-PID`) until it is restored, so that a run killed
//! before it could restore is undone by the next one.

use std::path::{Path, PathBuf};

use super::{cpu_mask, pid_alive, NetError, STATE_DIR};

const SOCK_FLOW: &str = "/proc/sys/net/core/rps_sock_flow_entries";
const LO_FLOW_CNT: &str = "/sys/class/net/lo/queues/rx-0/rps_flow_cnt";
const LO_CPUS: &str = "/sys/class/net/lo/queues/rx-0/rps_cpus";
/// The flow table's size, and `lo`'s share of it (one queue: all).
const ENTRIES: &str = "32768";

/// Steering set on `lo`; restored when dropped.
#[derive(Debug)]
pub struct Rfs {
    saved: Vec<(PathBuf, String)>,
    state: PathBuf,
}

impl Rfs {
    /// Sets steering to `cpus` (the server's and the load's), after
    /// undoing what a killed run left; refused while another live run has
    /// it set.
    pub fn set(cpus: &[usize]) -> Result<Rfs, NetError> {
        sweep()?;
        let saved: Vec<(PathBuf, String)> = [SOCK_FLOW, LO_FLOW_CNT, LO_CPUS]
            .into_iter()
            .map(|p| Ok((PathBuf::from(p), read(Path::new(p))?)))
            .collect::<Result<_, NetError>>()?;
        std::fs::create_dir_all(STATE_DIR).map_err(|e| NetError::io(STATE_DIR, e))?;
        let state = Path::new(STATE_DIR).join(format!("rfs-{}", std::process::id()));
        let text: String = saved
            .iter()
            .map(|(p, v)| format!("{}\t{v}\n", p.display()))
            .collect();
        std::fs::write(&state, text).map_err(|e| NetError::io(&state, e))?;
        let rfs = Rfs { saved, state };
        for (path, value) in [
            (SOCK_FLOW, ENTRIES.to_string()),
            (LO_FLOW_CNT, ENTRIES.to_string()),
            (LO_CPUS, cpu_mask(cpus)),
        ] {
            write(Path::new(path), &value)?;
        }
        Ok(rfs)
    }
}

impl Drop for Rfs {
    fn drop(&mut self) {
        restore(&self.saved);
        let _ = std::fs::remove_file(&self.state);
    }
}

/// Restores what a dead run saved; refuses while a live one has it set.
fn sweep() -> Result<(), NetError> {
    let Ok(dir) = std::fs::read_dir(STATE_DIR) else {
        return Ok(());
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("rfs-")) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && pid_alive(pid) {
            return Err(NetError::Busy(pid));
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let saved: Vec<(PathBuf, String)> = text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(p, v)| (PathBuf::from(p), v.to_string()))
            .collect();
        restore(&saved);
        eprintln!("h2lab: restored the receive steering a killed run (pid {pid}) had set");
        let _ = std::fs::remove_file(entry.path());
    }
    Ok(())
}

fn restore(saved: &[(PathBuf, String)]) {
    for (path, value) in saved {
        if let Err(e) = write(path, value) {
            eprintln!("h2lab: cannot restore {}: {e}", path.display());
        }
    }
}

fn read(path: &Path) -> Result<String, NetError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| NetError::io(path, e))
}

fn write(path: &Path, value: &str) -> Result<(), NetError> {
    std::fs::write(path, value).map_err(|e| NetError::io(path, e))
}

/// The values `--net rfs` sets, as they are now: for tests that check
/// they are put back.
pub fn current() -> Vec<(String, String)> {
    [SOCK_FLOW, LO_FLOW_CNT, LO_CPUS]
        .into_iter()
        .map(|p| (p.to_string(), read(Path::new(p)).unwrap_or_default()))
        .collect()
}
