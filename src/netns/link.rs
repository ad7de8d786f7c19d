//! `--link`: what the veth pair between the server and its load is like,
//! each direction shaped alike. A rate is the kernel's token bucket
//! (`tbf`, in every kernel that has traffic control); a delay or a loss
//! needs `netem` (sch_netem), which many kernels built for virtual
//! machines leave out: then it is refused at the start (see
//! [`super::NetError::NoNetem`]).

use std::fmt;
use std::time::Duration;

/// A link's shape; the default shapes nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Link {
    /// Bits a second each way.
    pub rate: Option<u64>,
    pub delay: Option<Duration>,
    /// Packets dropped each way, per million.
    pub loss_ppm: Option<u32>,
}

/// The clock ticks a second the token bucket's burst is sized for (a
/// burst smaller than a tick's worth of octets cannot reach the rate);
/// 250 is the tick of Debian's kernels and of this project's machines,
/// and a faster tick only needs less.
const HZ: u64 = 250;
/// The largest packet the veth pair passes whole: a 64 KiB GSO segment and
/// its headers. A bucket smaller than a packet would drop it.
const LARGEST_PACKET: u64 = 65_536 + 1_514;

impl Link {
    /// `rate=1gbit,delay=20ms,loss=0.1%`: any of them, in any order.
    pub fn parse(spec: &str) -> Result<Link, String> {
        let mut link = Link::default();
        for part in spec.split(',').map(str::trim) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not KEY=VALUE (rate=, delay=, loss=)"))?;
            match key {
                "rate" => link.rate = Some(rate(value)?),
                "delay" => link.delay = Some(delay(value)?),
                "loss" => link.loss_ppm = Some(loss(value)?),
                _ => {
                    return Err(format!(
                        "unknown link setting '{key}' (rate=, delay=, loss=)"
                    ))
                }
            }
        }
        Ok(link)
    }

    pub fn is_shaped(&self) -> bool {
        *self != Link::default()
    }

    /// Whether it needs netem (a delay or a loss).
    pub fn needs_netem(&self) -> bool {
        self.delay.is_some() || self.loss_ppm.is_some()
    }

    /// The `tc qdisc add dev DEV root …` words after `root`, or none.
    pub fn qdisc(&self) -> Option<Vec<String>> {
        if self.needs_netem() {
            let mut words = vec!["netem".to_string()];
            if let Some(d) = self.delay {
                words.extend(["delay".into(), format!("{}us", d.as_micros())]);
            }
            if let Some(l) = self.loss_ppm {
                words.extend(["loss".into(), format!("{}%", l as f64 / 1e4)]);
            }
            if let Some(r) = self.rate {
                words.extend(["rate".into(), format!("{r}bit")]);
            }
            return Some(words);
        }
        let rate = self.rate?;
        Some(vec![
            "tbf".into(),
            "rate".into(),
            format!("{rate}bit"),
            "burst".into(),
            burst(rate).to_string(),
            "latency".into(),
            "50ms".into(),
        ])
    }
}

/// Octets the bucket holds: two ticks' worth of the rate, and never less
/// than the largest packet.
pub fn burst(rate_bits: u64) -> u64 {
    (rate_bits / 8 / HZ * 2).max(LARGEST_PACKET)
}

fn rate(value: &str) -> Result<u64, String> {
    let lower = value.to_ascii_lowercase();
    let (digits, scale) = [
        ("gbit", 1_000_000_000),
        ("mbit", 1_000_000),
        ("kbit", 1_000),
        ("bit", 1),
    ]
    .into_iter()
    .find_map(|(unit, scale)| lower.strip_suffix(unit).map(|d| (d.to_string(), scale)))
    .ok_or_else(|| format!("rate '{value}': a number with bit, kbit, mbit or gbit (e.g. 1gbit)"))?;
    let n: f64 = digits.parse().map_err(|_| {
        format!("rate '{value}': a number with bit, kbit, mbit or gbit (e.g. 1gbit)")
    })?;
    let bits = n * scale as f64;
    if !(8_000.0..=400e9).contains(&bits) {
        return Err(format!("rate '{value}': from 8kbit to 400gbit"));
    }
    Ok(bits as u64)
}

fn delay(value: &str) -> Result<Duration, String> {
    let bad = || format!("delay '{value}': a number with us, ms or s (e.g. 20ms)");
    let (digits, scale) = [("us", 1e-6), ("ms", 1e-3), ("s", 1.0)]
        .into_iter()
        .find_map(|(unit, scale)| value.strip_suffix(unit).map(|d| (d, scale)))
        .ok_or_else(bad)?;
    let n: f64 = digits.parse().map_err(|_| bad())?;
    if !(0.0..=10.0).contains(&(n * scale)) {
        return Err(format!("delay '{value}': at most 10 s"));
    }
    Ok(Duration::from_secs_f64(n * scale))
}

fn loss(value: &str) -> Result<u32, String> {
    let n: f64 = value
        .strip_suffix('%')
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| format!("loss '{value}': a percentage (e.g. 0.1%)"))?;
    if !(0.0..=100.0).contains(&n) {
        return Err(format!("loss '{value}': from 0% to 100%"));
    }
    Ok((n * 1e4).round() as u32)
}

impl fmt::Display for Link {
    /// What a row says: `rate=1gbit`, `-` when nothing is shaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(r) = self.rate {
            parts.push(format!("rate={}", rate_text(r)));
        }
        if let Some(d) = self.delay {
            parts.push(format!("delay={}us", d.as_micros()));
        }
        if let Some(l) = self.loss_ppm {
            parts.push(format!("loss={}%", l as f64 / 1e4));
        }
        match parts.is_empty() {
            true => f.write_str("-"),
            false => f.write_str(&parts.join(",")),
        }
    }
}

/// `1gbit`, `100mbit`, `1500kbit`: the largest unit that divides it.
fn rate_text(bits: u64) -> String {
    for (unit, scale) in [
        ("gbit", 1_000_000_000),
        ("mbit", 1_000_000),
        ("kbit", 1_000),
    ] {
        if bits % scale == 0 {
            return format!("{}{unit}", bits / scale);
        }
    }
    format!("{bits}bit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_delays_and_losses_are_read() {
        let l = Link::parse("rate=1gbit").unwrap();
        assert_eq!(l.rate, Some(1_000_000_000));
        assert!(!l.needs_netem() && l.is_shaped());
        assert_eq!(Link::parse("rate=100mbit").unwrap().rate, Some(100_000_000));
        assert_eq!(
            Link::parse("rate=2.5Gbit").unwrap().rate,
            Some(2_500_000_000)
        );
        assert_eq!(Link::parse("rate=64kbit").unwrap().rate, Some(64_000));
        let l = Link::parse("delay=20ms, loss=0.1%").unwrap();
        assert_eq!(l.delay, Some(Duration::from_millis(20)));
        assert_eq!(l.loss_ppm, Some(1_000));
        assert!(l.needs_netem());
        assert_eq!(
            Link::parse("delay=250us").unwrap().delay,
            Some(Duration::from_micros(250))
        );
        assert!(!Link::default().is_shaped());
    }

    #[test]
    fn what_is_not_a_link_is_refused() {
        for bad in [
            "",
            "rate",
            "rate=",
            "rate=1",
            "rate=fastgbit",
            "rate=1gbps",
            "rate=1bit",
            "rate=1000gbit",
            "delay=20",
            "delay=11s",
            "delay=-1ms",
            "loss=5",
            "loss=101%",
            "loss=-1%",
            "jitter=1ms",
            "rate=1gbit,",
        ] {
            assert!(Link::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_rate_is_a_token_bucket_sized_for_it() {
        let words = Link::parse("rate=100mbit").unwrap().qdisc().unwrap();
        assert_eq!(
            words,
            [
                "tbf",
                "rate",
                "100000000bit",
                "burst",
                "100000",
                "latency",
                "50ms"
            ]
        );
        // Never under a whole GSO packet.
        assert_eq!(burst(1_000_000), LARGEST_PACKET);
        assert_eq!(burst(10_000_000_000), 10_000_000);
        assert_eq!(Link::default().qdisc(), None);
    }

    #[test]
    fn a_delay_or_a_loss_is_netem_with_the_rate_in_it() {
        let words = Link::parse("rate=1gbit,delay=20ms,loss=0.5%")
            .unwrap()
            .qdisc()
            .unwrap();
        assert_eq!(
            words,
            [
                "netem",
                "delay",
                "20000us",
                "loss",
                "0.5%",
                "rate",
                "1000000000bit"
            ]
        );
    }

    #[test]
    fn rows_say_the_link_in_its_own_words() {
        assert_eq!(
            Link::parse("rate=10gbit").unwrap().to_string(),
            "rate=10gbit"
        );
        assert_eq!(
            Link::parse("rate=1500kbit").unwrap().to_string(),
            "rate=1500kbit"
        );
        assert_eq!(
            Link::parse("loss=1%,delay=2ms").unwrap().to_string(),
            "delay=2000us,loss=1%"
        );
        assert_eq!(Link::default().to_string(), "-");
    }
}
