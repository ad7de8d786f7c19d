//! What `--dispatch uring` asks of io_uring, each part switchable so that
//! its share can be measured (`--uring-features`): the ring's setup flags
//! and how the errors of setting one up are said.

use std::fmt;
use std::str::FromStr;

/// The io_uring features the `uring` dispatch uses; all on by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UringFeatures {
    /// `IORING_SETUP_SINGLE_ISSUER` (6.0): only the loop's thread submits,
    /// so the kernel skips the locking for others.
    pub single_issuer: bool,
    /// `IORING_SETUP_DEFER_TASKRUN` (6.1, needs `single-issuer`): the
    /// kernel's completion work runs when the loop waits, not whenever
    /// an interrupt lands.
    pub defer_taskrun: bool,
    /// A multishot accept (5.19): one submission accepts every
    /// connection; off, one accept is submitted per connection.
    pub multishot_accept: bool,
    /// A multishot receive (6.0): one submission per connection receives
    /// until it ends; off, a receive is submitted again after each one.
    /// Both take their buffer from the provided buffer ring.
    pub multishot_recv: bool,
}

impl Default for UringFeatures {
    fn default() -> Self {
        Self::ALL
    }
}

/// The names `--uring-features` takes, in display order.
const NAMES: [&str; 4] = [
    "single-issuer",
    "defer-taskrun",
    "multishot-accept",
    "multishot-recv",
];

impl UringFeatures {
    pub const ALL: Self = Self {
        single_issuer: true,
        defer_taskrun: true,
        multishot_accept: true,
        multishot_recv: true,
    };
    pub const NONE: Self = Self {
        single_issuer: false,
        defer_taskrun: false,
        multishot_accept: false,
        multishot_recv: false,
    };

    fn get_mut(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "single-issuer" => &mut self.single_issuer,
            "defer-taskrun" => &mut self.defer_taskrun,
            "multishot-accept" => &mut self.multishot_accept,
            "multishot-recv" => &mut self.multishot_recv,
            _ => return None,
        })
    }

    fn flags(&self) -> [bool; 4] {
        [
            self.single_issuer,
            self.defer_taskrun,
            self.multishot_accept,
            self.multishot_recv,
        ]
    }
}

impl FromStr for UringFeatures {
    type Err = String;

    /// `all`, `none`, a comma list of the features to use, or a comma list
    /// of `no-FEATURE` to leave out of all of them.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s {
            "all" => return Ok(Self::ALL),
            "none" => return Ok(Self::NONE),
            _ => {}
        }
        let items: Vec<&str> = s.split(',').map(str::trim).collect();
        let removing = items.iter().all(|i| i.starts_with("no-"));
        let mut features = match removing {
            true => Self::ALL,
            false => Self::NONE,
        };
        for item in items {
            let (name, on) = match item.strip_prefix("no-") {
                Some(name) if removing => (name, false),
                Some(_) => {
                    return Err(format!(
                        "`{item}`: list the features to use, or only no-FEATURE to leave some out of all"
                    ))
                }
                None => (item, true),
            };
            match features.get_mut(name) {
                Some(flag) => *flag = on,
                None => {
                    return Err(format!(
                        "unknown io_uring feature `{name}`; known: all, none, {}",
                        NAMES.join(", ")
                    ))
                }
            }
        }
        if features.defer_taskrun && !features.single_issuer {
            return Err("defer-taskrun needs single-issuer (the kernel refuses it alone)".into());
        }
        Ok(features)
    }
}

impl fmt::Display for UringFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ALL {
            return f.write_str("all");
        }
        let on: Vec<&str> = NAMES
            .iter()
            .zip(self.flags())
            .filter_map(|(name, on)| on.then_some(*name))
            .collect();
        match on.is_empty() {
            true => f.write_str("none"),
            false => f.write_str(&on.join(",")),
        }
    }
}

/// The ring builder for `features`.
pub fn builder(features: UringFeatures) -> io_uring::Builder {
    let mut b = io_uring::IoUring::builder();
    if features.single_issuer {
        b.setup_single_issuer();
    }
    if features.defer_taskrun {
        b.setup_defer_taskrun();
    }
    b
}

/// Why io_uring cannot serve here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    /// One line that tells a user why.
    pub why: String,
    /// The system refuses io_uring (EPERM: `kernel.io_uring_disabled` or a
    /// seccomp filter; ENOSYS: a kernel without it). Anything else (EINVAL
    /// for a flag, a failed buffer-ring registration) is h2lab asking for
    /// something the kernel will not set up: a fault, not a refusal.
    pub refused: bool,
    /// The error number the kernel gave, if any.
    pub errno: Option<i32>,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.why)
    }
}

/// Whether an error number from setting a ring up is the system refusing
/// io_uring as a whole.
fn refusal(errno: Option<i32>) -> bool {
    matches!(errno, Some(libc::EPERM) | Some(libc::ENOSYS))
}

/// An error from setting a ring up, said so that a user knows why.
pub fn explain(e: &std::io::Error) -> Unavailable {
    let why = match e.raw_os_error() {
        Some(libc::EPERM) => {
            "not permitted (kernel.io_uring_disabled, or a seccomp filter such as Docker's default)"
        }
        Some(libc::ENOSYS) => "the kernel has no io_uring (ENOSYS)",
        Some(libc::EINVAL) => {
            "the kernel refuses a feature it asks for (too old a kernel? try --uring-features none)"
        }
        _ => "",
    };
    Unavailable {
        why: match why.is_empty() {
            true => e.to_string(),
            false => format!("{why}: {e}"),
        },
        refused: refusal(e.raw_os_error()),
        errno: e.raw_os_error(),
    }
}

/// For the test suites (the crate's own and `tests/`): whether a test that
/// needs io_uring must not run, given what setting a ring up said
/// (`probe`). A refusal is said on stderr and appended to the file
/// `H2LAB_SKIP_LOG` names (`.ci/run` counts its lines in the suite's
/// closing line); a test that must not skip panics ([`test_verdict`]).
#[doc(hidden)]
pub fn skip_test(test: &str, probe: Option<Unavailable>) -> bool {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok();
    match test_verdict(probe.as_ref(), ci, sysctl.as_deref()) {
        Ok(false) => false,
        Err(why) => panic!("{test}: {why}"),
        Ok(true) => {
            let u = probe.expect("a skip has a refusal");
            eprintln!("{test}: skipped: io_uring is refused here ({u})");
            if let Some(log) = std::env::var_os("H2LAB_SKIP_LOG") {
                use std::io::Write;
                let line = format!("{test}: io_uring refused: {u}\n");
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .and_then(|mut f| f.write_all(line.as_bytes()))
                    .expect("H2LAB_SKIP_LOG: the skip log");
            }
            true
        }
    }
}

/// Whether a uring test skips (`Ok(true)`), runs (`Ok(false)`) or fails
/// (`Err`), from the probe, whether this is CI (`CI=true`), and
/// `kernel.io_uring_disabled` as read (None: no such sysctl).
///
/// * It runs where the ring is set up.
/// * A fault (not a refusal: h2lab's own ring or buffer ring is broken)
///   fails: every uring test must not pass silently for it.
/// * A refusal skips, except under CI where the sysctl says io_uring is
///   enabled (0, or no sysctl and not ENOSYS): there every test must run.
pub fn test_verdict(
    probe: Option<&Unavailable>,
    ci: bool,
    sysctl: Option<&str>,
) -> Result<bool, String> {
    let Some(u) = probe else {
        return Ok(false);
    };
    if !u.refused {
        return Err(format!(
            "io_uring is there but h2lab's ring cannot be set up: {u}"
        ));
    }
    let enabled = match sysctl.map(str::trim) {
        Some(value) => value == "0",
        None => u.errno != Some(libc::ENOSYS),
    };
    if ci && enabled {
        return Err(format!(
            "io_uring is refused ({u}) where kernel.io_uring_disabled does not disable it: under CI every uring test runs"
        ));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EPERM and ENOSYS are the system saying no; EINVAL (a flag this
    /// kernel lacks) and the rest are faults of what h2lab asked for.
    #[test]
    fn only_eperm_and_enosys_are_refusals() {
        let of = |n| explain(&std::io::Error::from_raw_os_error(n));
        assert!(of(libc::EPERM).refused);
        assert!(of(libc::EPERM).why.contains("not permitted"));
        assert!(of(libc::ENOSYS).refused);
        assert!(of(libc::ENOSYS).why.contains("ENOSYS"));
        assert!(!of(libc::EINVAL).refused);
        assert!(of(libc::EINVAL).why.contains("--uring-features none"));
        assert!(!of(libc::ENOMEM).refused);
        assert!(!explain(&std::io::Error::other("no")).refused);
    }

    /// A ring that sets up runs its test; a fault fails it, in CI or
    /// not; a refusal skips it, except under CI with io_uring enabled.
    #[test]
    fn a_uring_test_runs_fails_or_skips_by_what_the_probe_said() {
        let of = |n| explain(&std::io::Error::from_raw_os_error(n));
        let (fault, eperm, enosys) = (of(libc::EINVAL), of(libc::EPERM), of(libc::ENOSYS));
        for ci in [false, true] {
            assert_eq!(test_verdict(None, ci, Some("0")), Ok(false));
            assert!(test_verdict(Some(&fault), ci, Some("0")).is_err());
            assert!(test_verdict(Some(&fault), ci, Some("2")).is_err());
            assert_eq!(test_verdict(Some(&eperm), ci, Some("2")), Ok(true));
            assert_eq!(test_verdict(Some(&eperm), ci, Some("1\n")), Ok(true));
            assert_eq!(test_verdict(Some(&enosys), ci, None), Ok(true));
        }
        assert_eq!(test_verdict(Some(&eperm), false, Some("0\n")), Ok(true));
        assert!(test_verdict(Some(&eperm), true, Some("0\n")).is_err());
        assert!(test_verdict(Some(&eperm), true, None).is_err());
        assert_eq!(test_verdict(Some(&eperm), false, None), Ok(true));
        assert!(!skip_test("t", None));
        let failed = std::panic::catch_unwind(|| skip_test("t", Some(fault.clone())));
        assert!(failed.is_err(), "a fault of ours is never a skip");
    }

    #[test]
    fn features_parse_and_print_back() {
        assert_eq!("all".parse::<UringFeatures>(), Ok(UringFeatures::ALL));
        assert_eq!("none".parse::<UringFeatures>(), Ok(UringFeatures::NONE));
        let no_defer: UringFeatures = "no-defer-taskrun".parse().unwrap();
        assert_eq!(
            no_defer,
            UringFeatures {
                defer_taskrun: false,
                ..UringFeatures::ALL
            }
        );
        assert_eq!(
            no_defer.to_string(),
            "single-issuer,multishot-accept,multishot-recv"
        );
        assert_eq!(no_defer.to_string().parse::<UringFeatures>(), Ok(no_defer));
        let only: UringFeatures = "multishot-recv".parse().unwrap();
        assert_eq!(only.to_string(), "multishot-recv");
        assert!("defer-taskrun"
            .parse::<UringFeatures>()
            .unwrap_err()
            .contains("single-issuer"));
        assert!("warp-drive"
            .parse::<UringFeatures>()
            .unwrap_err()
            .contains("known:"));
        assert!("single-issuer,no-multishot-recv"
            .parse::<UringFeatures>()
            .is_err());
    }
}
