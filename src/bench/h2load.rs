//! h2load as the bench's load client: how it is run and how its summary is
//! read.

use std::process::{Command, Stdio};
use std::time::Instant;

use super::system::{self, pinned};
use super::{BenchConfig, BenchError, Cell, Measured};

/// One run of h2load against `url` for the bench's duration; a cell's
/// mix is given as h2load takes several URIs, each client taking them in
/// turn (a weight repeats its URI, spread as `h2lab load` spreads them).
pub fn run(config: &BenchConfig, cell: Cell, url: &str) -> Result<Measured, BenchError> {
    let urls = match cell.mix {
        None => vec![url.to_string()],
        Some(m) => {
            let mut uris = Vec::new();
            let mut weights = Vec::new();
            for u in m.urls(url) {
                let (u, w) = crate::load::url::weighted(&u)
                    .map_err(|e| BenchError::H2load(e.to_string()))?;
                uris.push(u.to_string());
                weights.push(w);
            }
            crate::load::url::weighted_order(&weights)
                .into_iter()
                .map(|i| uris[i].clone())
                .collect()
        }
    };
    run_with(
        &Shape {
            clients: cell.clients,
            pipeline: cell.pipeline,
            // As many threads as the server has, at most one per connection.
            threads: cell.threads.clamp(1, cell.clients),
            duration: config.duration,
            warm_up: config.warm_up,
            timeout: config.timeout,
            window: config.window,
            pin: config.pin_client.as_deref(),
        },
        &urls,
    )
}

/// What an h2load run is asked.
pub struct Shape<'a> {
    pub clients: usize,
    pub pipeline: usize,
    pub threads: usize,
    pub duration: std::time::Duration,
    pub warm_up: std::time::Duration,
    pub timeout: std::time::Duration,
    pub window: Option<u32>,
    /// CPUs for h2load (`taskset -c`).
    pub pin: Option<&'a str>,
}

/// One run of h2load against `urls` (one, or a mix) as `shape` says.
pub fn run_with(shape: &Shape<'_>, urls: &[String]) -> Result<Measured, BenchError> {
    let started = Instant::now();
    let secs = shape.timeout.as_secs().max(1).to_string();
    let child = system::owned(pinned(Command::new("h2load"), shape.pin))
        .arg(format!(
            "--duration={}ms",
            shape.duration.as_millis().max(1)
        ))
        .arg(format!("--warm-up-time={}ms", shape.warm_up.as_millis()))
        .args(["-c", &shape.clients.to_string()])
        .args(["-m", &shape.pipeline.to_string()])
        .args(["-t", &shape.threads.to_string()])
        .args(["-T", &secs, "-N", &secs])
        .args(window_bits(shape.window))
        .args(urls)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            BenchError::H2load(format!(
                "cannot run it ({e}): apt-get install nghttp2-client"
            ))
        })?;
    let pid = child.id();
    system::register(pid);
    let out = child.wait_with_output();
    system::kill_group(pid);
    let out = out.map_err(|e| BenchError::H2load(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse(&text, started.elapsed().as_secs_f64())
        .ok_or_else(|| BenchError::H2load(format!("unexpected output: {}", text.trim())))
}

/// `--window SIZE` as h2load's -w and -W: windows of 2^N-1 octets, N the
/// least with 2^N-1 at or above SIZE.
fn window_bits(window: Option<u32>) -> Vec<String> {
    let Some(w) = window else {
        return Vec::new();
    };
    let bits = (u64::from(w) + 1)
        .next_power_of_two()
        .trailing_zeros()
        .min(30);
    vec!["-w".into(), bits.to_string(), "-W".into(), bits.to_string()]
}

/// Reads h2load's summary: req/s, the request counts and the mean time
/// for a request (it prints no percentiles).
fn parse(text: &str, elapsed: f64) -> Option<Measured> {
    let number = |s: &str| s.trim().parse::<f64>().ok();
    let line = |prefix: &str| text.lines().find(|l| l.starts_with(prefix));
    let finished = line("finished in")?;
    let req_per_s = finished
        .split(',')
        .nth(1)?
        .trim()
        .strip_suffix("req/s")
        .and_then(number)?;
    // Goodput: the `traffic:` line's DATA octets over the measured time.
    let measured = finished
        .strip_prefix("finished in")?
        .split(',')
        .next()
        .map(|s| micros(s.trim()) / 1e6)?;
    let data = line("traffic:")
        .and_then(|l| l.split(',').find(|p| p.trim_end().ends_with(" data")))
        .and_then(|p| p.split_once('(')?.1.split_once(')')?.0.parse::<f64>().ok())
        .unwrap_or(0.0);
    let requests = line("requests:")?;
    let count = |what: &str| -> Option<u64> {
        requests
            .split(',')
            .find(|p| p.trim().ends_with(what))?
            .trim()
            .split(' ')
            .find_map(|w| w.parse().ok())
    };
    let succeeded = count("succeeded")?;
    // As h2load counts them: with --duration it stops with requests in
    // flight, which it does not count, so a starved connection is invisible.
    let failed = count("failed")? + count("errored")? + count("timeout")?;
    let mean_us = line("time for request:")
        .and_then(|l| l.split_whitespace().nth(5))
        .map(micros)
        .unwrap_or(0.0);
    Some(Measured {
        req_per_s,
        p50_us: None, // h2load prints no percentiles
        p99_us: None,
        mean_us,
        succeeded,
        failed,
        connection_errors: 0, // nor a per-connection outcome
        seconds: elapsed,
        goodput_bytes_per_s: if measured > 0.0 { data / measured } else { 0.0 },
        octets_in: None,
    })
}

/// `123.45us`, `1.2ms`, `2s` in µs.
fn micros(s: &str) -> f64 {
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().map(|v| v * scale).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2load_summary_is_read() {
        let text = "finished in 1.00s, 12345.67 req/s, 1.2MB/s\n\
                    requests: 12400 total, 12400 started, 12346 done, 12340 succeeded, 6 failed, 2 errored, 1 timeout\n\
                    traffic: 1.34MB (1404858) total, 39.11KB (40050) headers (space savings 90.16%), 1.29MB (1350000) data\n\
                    time for request:      120us      8.05ms       812us       455us    70.12%\n";
        let m = parse(text, 1.0).unwrap();
        assert_eq!(
            (m.req_per_s, m.p50_us, m.succeeded, m.failed),
            (12345.67, None, 12340, 9)
        );
        assert_eq!(m.mean_us, 812.0);
        assert_eq!(m.goodput_bytes_per_s, 1_350_000.0);
        assert!(parse("nonsense", 1.0).is_none());
    }

    #[test]
    fn windows_become_h2loads_bits() {
        assert_eq!(window_bits(Some(65_535)), ["-w", "16", "-W", "16"]);
        assert_eq!(window_bits(Some(16 << 20)), ["-w", "25", "-W", "25"]);
        assert!(window_bits(None).is_empty());
    }

    #[test]
    fn durations_are_read_in_micros() {
        assert_eq!(micros("1.5ms"), 1500.0);
        assert_eq!(micros("812us"), 812.0);
        assert_eq!(micros("2s"), 2e6);
    }
}
