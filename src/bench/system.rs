//! What the bench asks of the operating system: CPU pinning (`taskset`),
//! children it owns (a process group each, PR_SET_PDEATHSIG) and their end
//! on SIGINT/SIGTERM, children of processes from /proc, and tool versions.

use std::process::Command;

/// `cmd` run under `taskset -c CPUS` when `cpus` is given.
pub fn pinned(cmd: Command, cpus: Option<&str>) -> Command {
    match cpus {
        None => cmd,
        Some(cpus) => {
            let mut t = Command::new("taskset");
            t.arg("-c")
                .arg(cpus)
                .arg(cmd.get_program())
                .args(cmd.get_args());
            t
        }
    }
}

/// Process groups of the children the bench runs (servers, peers, h2load),
/// so that a signal to the bench can stop them all.
static GROUPS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());
/// Set once SIGINT or SIGTERM has reached the bench.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `cmd` as a child the bench owns: the leader of a process group of its
/// own (its children, nginx's workers, go with it) and killed by the
/// kernel if the bench dies first (PR_SET_PDEATHSIG, set by util-linux's
/// `setpriv`, since a `pre_exec` would need unsafe code, which this crate
/// keeps to one allocator call). Spawn it from the main thread: the signal
/// follows the thread that forked.
pub fn owned(cmd: Command) -> Command {
    use std::os::unix::process::CommandExt;
    let mut owned = Command::new("setpriv");
    owned
        .args(["--pdeathsig", "KILL", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .process_group(0);
    owned
}

/// Remembers the group of an owned child for [`interrupt`].
pub fn register(pid: u32) {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
}

/// Kills the group of an owned child and forgets it.
pub fn kill_group(pid: u32) {
    GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&p| p != pid);
    kill_process_group(pid);
}

/// SIGKILL to every process of the group `pid` leads (none left: nothing).
fn kill_process_group(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// SIGINT or SIGTERM reached the bench: every owned child is killed, so
/// the run in progress ends at once; the bench then stops.
pub fn interrupt() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    let groups = std::mem::take(&mut *GROUPS.lock().unwrap_or_else(|e| e.into_inner()));
    groups.into_iter().for_each(kill_process_group);
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// The default pinning: the server on the first CPU this process may use,
/// the load on the second; none on a machine with one CPU.
pub fn default_pins() -> Option<(String, String)> {
    let mut cpus = allowed_cpus().into_iter();
    Some((cpus.next()?.to_string(), cpus.next()?.to_string()))
}

/// The CPUs this process may run on, in order (none if it cannot tell).
pub fn allowed_cpus() -> Vec<usize> {
    let Ok(set) = rustix::thread::sched_getaffinity(None) else {
        return Vec::new();
    };
    (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&c| set.is_set(c))
        .collect()
}

/// Pins every thread of this process to `cpus` (for the built-in client).
pub fn pin_self(cpus: &str) -> Result<(), String> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .output()
        .map_err(|e| format!("cannot run taskset ({e}): apt-get install util-linux"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "taskset -c {cpus}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// A `taskset -c` CPU list: numbers, ranges and commas.
pub fn check_cpu_list(s: &str) -> Result<String, String> {
    match cpu_list(s) {
        Some(_) => Ok(s.to_string()),
        None => Err(format!("'{s}' is not a CPU list (e.g. 0, 0-1 or 0,2)")),
    }
}

/// The CPUs of a `taskset -c` list (`0`, `0-3`, `0,2-3`), in order, each
/// once; `None` for a list that is not one.
pub fn cpu_list(s: &str) -> Option<Vec<usize>> {
    let num = |x: &str| -> Option<usize> {
        (!x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
            .then(|| x.parse().ok())
            .flatten()
    };
    let mut cpus = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b) = (num(a)?, num(b)?);
        if a > b || b - a > 4096 {
            return None;
        }
        cpus.extend(a..=b);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// The fields of /proc/PID/stat after the parenthesised command name
/// (field 3, the state, is the first).
fn stat_fields(pid: u32) -> std::io::Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    Ok(stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default())
}

/// Processes whose parent is `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let child: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            // The parent's pid is field 4.
            let ppid: u32 = stat_fields(child).ok()?.get(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// The first line of a command's output (stdout, else stderr), if it runs.
pub fn version_of(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_checked() {
        for good in ["0", "0-1", "0,2", "1,3-5"] {
            assert_eq!(check_cpu_list(good).as_deref(), Ok(good));
        }
        for bad in ["", "a", "0-", "-1", "0,,1", "0;1", "+1", "1-0"] {
            assert!(check_cpu_list(bad).is_err(), "{bad}");
        }
        assert_eq!(cpu_list("0-3"), Some(vec![0, 1, 2, 3]));
        assert_eq!(cpu_list("3,0-1,1"), Some(vec![0, 1, 3]));
        let cmd = pinned(Command::new("h2load"), Some("1"));
        let args: Vec<&std::ffi::OsStr> = cmd.get_args().collect();
        assert_eq!(cmd.get_program(), "taskset");
        assert_eq!(args, ["-c", "1", "h2load"]);
    }

    /// This test's process is among its parent's children.
    #[test]
    fn this_process_has_the_test_runner_as_parent() {
        let me = std::process::id();
        let parent = stat_fields(me).unwrap()[1].parse::<u32>().unwrap();
        assert!(children_of(parent).contains(&me));
    }
}
