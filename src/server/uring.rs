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

/// An error from setting a ring up, said so that a user knows why.
pub fn explain(e: &std::io::Error) -> String {
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
    match why.is_empty() {
        true => e.to_string(),
        false => format!("{why}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
