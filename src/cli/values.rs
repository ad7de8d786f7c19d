//! Value parsers shared by the commands' options.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// A duration: a number of seconds (fractions allowed) or a number with a
/// unit, `ns`, `us` (or `µs`), `ms`, `s`, `m` or `h` (`50us`, `500ms`,
/// `1s`, `2m`); more than 0, at most a day.
pub fn secs(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (number, unit) = match t.find(|c: char| c.is_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "'{s}' is not a duration (seconds, or a number with ns, us, ms, s, m or h)"
            ))
        }
    };
    let secs = number.parse::<f64>().map(|n| n * scale).map_err(|_| {
        format!("'{s}' is not a duration (seconds, or a number with ns, us, ms, s, m or h)")
    })?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("'{s}' is not between 0 and 86400 seconds"));
    }
    // To the nearest nanosecond (50us is 50,000 ns, not 49,999).
    Ok(Duration::from_nanos((secs * 1e9).round() as u64))
}

/// Seconds, where 0 means none (a warm-up).
pub fn secs_or_zero(s: &str) -> Result<Duration, String> {
    match s
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse::<f64>()
    {
        Ok(0.0) => Ok(Duration::ZERO),
        _ => secs(s),
    }
}

/// An IP address, or `localhost` for 127.0.0.1.
pub fn host(s: &str) -> Result<IpAddr, String> {
    if s == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    s.parse()
        .map_err(|_| format!("'{s}' is not an IP address (use e.g. 127.0.0.1 or ::1)"))
}

/// A percentage: a finite number, 0 or more.
pub fn pct(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        _ => Err(format!("'{s}' is not a percentage (a number, 0 or more)")),
    }
}

/// A flow-control window: octets, or a number with B, KiB or MiB (`64KiB`,
/// `16MiB`), from 65,535 (HTTP/2's initial window) to 2^31-1.
pub fn window(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        _ => {
            return Err(format!(
                "'{s}' is not a window size (octets, or a number with B, KiB or MiB)"
            ))
        }
    };
    match number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
    {
        Some(n) if (65_535..=(1 << 31) - 1).contains(&n) => Ok(n as u32),
        _ => Err(format!(
            "'{s}' is not a window size from 65535 (64KiB) to 2^31-1"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_take_units_and_stay_in_range() {
        assert_eq!(window("64KiB"), Ok(65_536));
        assert_eq!(window("65535"), Ok(65_535));
        assert_eq!(window("16MiB"), Ok(16 << 20));
        for bad in ["1000", "4096MiB", "x", "1GiB", ""] {
            assert!(window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds_accept_fractions_and_refuse_nonsense() {
        assert_eq!(secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(secs("2"), Ok(Duration::from_secs(2)));
        assert_eq!(secs("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(secs("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(secs("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(secs("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(secs("50us"), Ok(Duration::from_micros(50)));
        assert_eq!(secs("50µs"), Ok(Duration::from_micros(50)));
        assert_eq!(secs("400ns"), Ok(Duration::from_nanos(400)));
        assert_eq!(secs_or_zero("0s"), Ok(Duration::ZERO));
        for bad in [
            "0", "-1", "nan", "inf", "1e9", "soon", "5x", "ms", "2d", "0ms", "25h",
        ] {
            assert!(secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_accepts_ips_and_localhost() {
        assert_eq!(host("localhost"), Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(host("::1"), Ok("::1".parse().unwrap()));
        assert!(host("example.org").is_err());
    }

    #[test]
    fn percentages_are_finite_and_not_negative() {
        assert_eq!(pct("12.5"), Ok(12.5));
        for bad in ["-5", "nan", "inf", "x"] {
            assert!(pct(bad).is_err(), "{bad}");
        }
    }
}
