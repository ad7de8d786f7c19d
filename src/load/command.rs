//! `h2lab load`: its options and its run.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::request::{self, Header};
use super::{Control, LoadConfig, Stop};
use crate::cli::{self, bad_input, values, CmdResult, Exit};

/// Load an HTTP/2 server like h2load: CLIENTS connections with up to
/// STREAMS requests in flight each, spread over THREADS threads, for -n
/// requests in all or for -D; reports what succeeded and failed (status
/// codes, every error by reason), req/s, latency, connect and first-byte
/// times, traffic and the TLS in use.
///
/// h2c with prior knowledge for http://, TLS with ALPN h2 for https://
/// (with --cacert FILE, or -k to accept any certificate). The request is
/// the URL's path and query (`:authority` from its host and port), GET
/// unless --method or -d say otherwise. With --rps the requests go out on
/// a schedule and latency counts from each one's scheduled time.
///
/// A progress line is shown on a terminal. Ctrl-C stops the run and prints
/// what was done (a second Ctrl-C exits at once). Exit status: 0 when
/// every request succeeded, 1 when some failed or the run was interrupted,
/// 2 on bad arguments or unusable files.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// http://HOST:PORT/PATH?QUERY or https://HOST:PORT/PATH?QUERY; more
    /// than one make a mix, each client taking them in turn, and
    /// `URL@WEIGHT` sends that one WEIGHT times as often (e.g.
    /// `http://h:8080/@99 http://h:8080/cpu/1ms@1`). The first one's
    /// scheme, host and port are used for all.
    #[arg(required_unless_present = "input_file", value_name = "URL")]
    pub urls: Vec<String>,
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub clients: u64,
    /// Requests in flight per connection (never more than the server's
    /// SETTINGS_MAX_CONCURRENT_STREAMS; at most 100 until its SETTINGS
    /// arrive).
    #[arg(short = 'm', long = "max-concurrent-streams", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub streams: u64,
    /// Threads, the connections spread over them in turn (at most -c).
    #[arg(short = 't', long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: u64,
    /// Requests in all, split evenly over the connections (default 1 without -D).
    #[arg(short = 'n', long, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Measure for this long (after --warm-up) instead of -n: seconds, or
    /// with a unit: 500ms, 10s, 2m.
    #[arg(short = 'D', long, value_name = "DURATION", value_parser = values::secs)]
    pub duration: Option<Duration>,
    /// With -D: load this long first without counting (e.g. 1s).
    #[arg(long, value_name = "DURATION", requires = "duration", value_parser = values::secs_or_zero)]
    pub warm_up: Option<Duration>,
    /// Send R requests per second in all, on a schedule (open loop), instead
    /// of as fast as the server answers.
    #[arg(long, value_name = "R", value_parser = rate)]
    pub rps: Option<f64>,
    /// The request method (default GET, or POST with -d).
    #[arg(long, value_parser = request::method)]
    pub method: Option<String>,
    /// A request header, NAME:VALUE (repeatable); `Host` sets :authority.
    #[arg(short = 'H', long = "header", value_name = "NAME:VALUE", value_parser = request::header)]
    pub headers: Vec<Header>,
    /// Send this file as every request's body.
    #[arg(short = 'd', long = "data", value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Take the URLs from this file, one per line (each may end in
    /// `@WEIGHT`), each client using them in turn; the first one's scheme,
    /// host and port are used for all.
    #[arg(
        short = 'i',
        long = "input-file",
        value_name = "FILE",
        conflicts_with = "urls"
    )]
    pub input_file: Option<PathBuf>,
    /// Send a browser's header fields besides -H (Chrome's for a
    /// subresource, with a session cookie: about 600 octets a request
    /// with the pseudo-header fields), HPACK-encoded with each
    /// connection's dynamic table as browsers do, so that after the first
    /// request most fields go as one octet each.
    #[arg(long)]
    pub browser_headers: bool,
    /// Accept any server certificate.
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// Trust this CA (PEM) for https://, e.g. certs/ca.pem.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub cacert: Option<PathBuf>,
    /// Requests still open this long after the last one was due (-D), or
    /// after the last progress (-n), fail as timed out.
    #[arg(long, value_name = "DURATION", default_value = "10", value_parser = values::secs)]
    pub timeout: Duration,
    /// Check every response's body: SIZE octets of `Hello World\n`
    /// repeated, what `h2lab serve --body SIZE` sends (12: the default
    /// answer). A response with any other body fails as `wrong body`.
    #[arg(long, value_name = "SIZE")]
    pub expect_body: Option<crate::engine::Body>,
    /// Our connection and stream receive windows (SETTINGS_INITIAL_WINDOW_SIZE
    /// and the connection's WINDOW_UPDATE), given back at half: from 64KiB
    /// (HTTP/2's initial 65535) to 2^31-1; `64KiB`, `16MiB`. Default 1 GiB,
    /// so that the server's sending is never held by our windows.
    #[arg(long, value_name = "SIZE", value_parser = values::window)]
    pub window: Option<u32>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Also write the per-path results to FILE as CSV (path, weight,
    /// requests, succeeded, failed, codes, p50_us, p99_us, body_bytes).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    #[command(flatten)]
    pub hosts: super::remote::HostArgs,
    /// Run as a --load-hosts agent: start at this instant (ns since the
    /// epoch, this host's clock) and write the tally as JSON.
    #[arg(long, hide = true, value_name = "NS", conflicts_with_all = ["json", "csv", "load_hosts"])]
    pub agent_start: Option<u64>,
}

/// A rate: a finite number of requests per second, more than 0.
fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1e9 => Ok(r),
        _ => Err(format!(
            "'{s}' is not a rate (requests per second, more than 0)"
        )),
    }
}

/// The URLs of `-i FILE`: one per line, blank lines skipped.
fn read_urls(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let urls: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if urls.is_empty() {
        anyhow::bail!("{} has no URL in it", path.display());
    }
    Ok(urls)
}

/// The run `args` ask for (`-i` and `-d` read).
fn config_of(args: &Args) -> anyhow::Result<LoadConfig> {
    let stop = match (args.requests, args.duration) {
        (_, Some(d)) => Stop::Duration(d),
        (n, None) => Stop::Requests(n.unwrap_or(1)),
    };
    let mut urls = match &args.input_file {
        Some(path) => read_urls(path)?,
        None => args.urls.clone(),
    };
    if urls.is_empty() {
        anyhow::bail!("no URL: give one, or -i FILE");
    }
    let url = urls.remove(0);
    let body = match &args.data {
        Some(path) => {
            Some(Arc::from(std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("cannot read {}: {e}", path.display())
            })?))
        }
        None => None,
    };
    Ok(LoadConfig {
        url,
        more_urls: urls,
        clients: args.clients as usize,
        streams: args.streams as usize,
        threads: args.threads as usize,
        stop,
        warm_up: args.warm_up.unwrap_or_default(),
        insecure: args.insecure,
        cacert: args.cacert.clone(),
        timeout: args.timeout,
        method: args.method.clone(),
        headers: args.headers.clone(),
        body,
        rps: args.rps,
        expect_body: args.expect_body,
        window: args.window.unwrap_or(super::client::WINDOW),
        browser_headers: args.browser_headers,
    })
}

pub fn run(args: Args) -> CmdResult {
    let config = config_of(&args).map_err(bad_input)?;
    let no_hosts = args.hosts.load_hosts.is_empty();
    if no_hosts && (args.hosts.remote_bin.is_some() || args.hosts.ssh_config.is_some()) {
        return Err(bad_input(anyhow::anyhow!(
            "--remote-bin and --ssh-config are for --load-hosts"
        )));
    }
    let control = Control::default();
    // Ctrl-C (or SIGTERM) ends the run with a report; a second one exits
    // at once, for a run that does not end.
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, control.interrupted.clone())
            .and_then(|_| signal_hook::flag::register(signal, control.interrupted.clone()))
            .map_err(|e| anyhow::anyhow!("cannot watch for signals: {e}"))?;
    }
    if let Some(start) = args.agent_start {
        return match super::remote::agent(&config, start, &control).map_err(bad_input)? {
            true => Ok(Exit::Success),
            false => Ok(Exit::Failure),
        };
    }
    let hosts = match no_hosts {
        true => None,
        false => Some(super::remote::Hosts::reach(&args.hosts).map_err(bad_input)?),
    };
    let report = std::thread::scope(|scope| {
        let run = scope.spawn(|| match &hosts {
            None => super::run_with(&config, &control),
            Some(hosts) => hosts.run(&config, args.data.as_deref(), hosts.start(), &control),
        });
        show_progress(&config, &control, || run.is_finished());
        run.join().expect("the load run does not panic")
    })
    .map_err(bad_input)?;
    if let Some(path) = &args.csv {
        let rows: Vec<_> = report.paths.iter().map(|p| p.row()).collect();
        let text = crate::csv_file::to_string(rows)?;
        std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    match args.json {
        true => cli::out(format!("{}\n", serde_json::to_string(&report)?)),
        false => cli::out(report.to_string()),
    }
    match report.clean() {
        true => Ok(Exit::Success),
        false => Ok(Exit::Failure),
    }
}

/// A live line on stderr while the run goes, if stderr is a terminal
/// (indicatif draws nothing otherwise): requests done of `-n`, or time
/// passed of `-D`, and the rate so far.
fn show_progress(config: &LoadConfig, control: &Control, finished: impl Fn() -> bool) {
    let (len, unit) = match config.stop {
        Stop::Requests(n) => (n, "requests"),
        Stop::Duration(d) => ((config.warm_up + d).as_millis() as u64, "ms"),
    };
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {unit}, {{elapsed}}  {{msg}}"
        ))
        .expect("a valid template"),
    );
    let start = Instant::now();
    while !finished() {
        std::thread::sleep(Duration::from_millis(100));
        let done = control.finished.load(Ordering::Relaxed);
        let elapsed = start.elapsed();
        bar.set_position(match config.stop {
            Stop::Requests(_) => done,
            Stop::Duration(_) => elapsed.as_millis() as u64,
        });
        bar.set_message(format!(
            "{done} done, {:.0} req/s",
            done as f64 / elapsed.as_secs_f64().max(1e-3)
        ));
    }
    bar.finish_and_clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Line {
        #[command(flatten)]
        args: Args,
    }

    fn parse(words: &[&str]) -> Args {
        <Line as clap::Parser>::try_parse_from(std::iter::once("load").chain(words.iter().copied()))
            .unwrap()
            .args
    }

    /// An agent's command line carries every option of the run: parsed
    /// again, it is the run with the host's share, and nothing else
    /// changed.
    #[test]
    fn an_agent_runs_what_the_controller_was_asked() {
        let dir = std::env::temp_dir().join(format!("h2lab-argv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("body file");
        std::fs::write(&data, b"up").unwrap();
        let urls = dir.join("urls");
        std::fs::write(
            &urls,
            "http://198.18.0.1:8080/\nhttp://198.18.0.1:8080/bytes/10@3\n",
        )
        .unwrap();
        let (data_s, urls_s) = (data.display().to_string(), urls.display().to_string());
        let full = [
            "-c",
            "5",
            "-m",
            "7",
            "-t",
            "3",
            "-D",
            "1500ms",
            "--warm-up",
            "250ms",
            "--rps",
            "1000",
            "--method",
            "PUT",
            "-H",
            "x-a: b c",
            "-H",
            "Host: there",
            "-d",
            &data_s,
            "--cacert",
            "/tmp/ca.pem",
            "--timeout",
            "3s",
            "--expect-body",
            "64KiB",
            "--window",
            "1MiB",
            "--browser-headers",
            "--load-hosts",
            "a,b",
            "--remote-bin",
            "/opt/h2lab",
            "--ssh-config",
            "/tmp/c",
            "--json",
            "--csv",
            "/tmp/x.csv",
            "-i",
            &urls_s,
        ];
        let args = parse(&full);
        assert_eq!(args.hosts.load_hosts.len(), 2);
        let config = config_of(&args).unwrap();
        let share = super::super::remote::Share {
            clients: 2,
            threads: 1,
            requests: None,
            rps: Some(400.0),
        };
        let argv = super::super::remote::agent_argv(&config, Some(&data), &share, 77);
        assert_eq!(&argv[..3], ["load", "--agent-start", "77"]);
        let words: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        let again = parse(&words);
        assert_eq!(again.agent_start, Some(77));
        assert!(again.hosts.load_hosts.is_empty() && !again.json && again.csv.is_none());
        let mut want = config.clone();
        want.clients = 2;
        want.threads = 1;
        want.rps = Some(400.0);
        assert_eq!(
            format!("{:?}", config_of(&again).unwrap()),
            format!("{want:?}")
        );

        // -n, and -k.
        let args = parse(&["-c", "2", "-n", "10", "-k", "http://h:1/", "http://h:1/x@2"]);
        let config = config_of(&args).unwrap();
        let share = super::super::remote::Share {
            clients: 2,
            threads: 1,
            requests: Some(6),
            rps: None,
        };
        let argv = super::super::remote::agent_argv(&config, None, &share, 5);
        let words: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        let again = config_of(&parse(&words)).unwrap();
        let mut want = config.clone();
        want.stop = Stop::Requests(6);
        assert_eq!(format!("{again:?}"), format!("{want:?}"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_agent_takes_no_report_options_and_hosts_need_hosts() {
        let refused = |words: &[&str]| {
            <Line as clap::Parser>::try_parse_from(
                std::iter::once("load").chain(words.iter().copied()),
            )
            .is_err()
        };
        assert!(refused(&["--agent-start", "1", "--json", "http://h:1/"]));
        assert!(refused(&[
            "--agent-start",
            "1",
            "--load-hosts",
            "a",
            "http://h:1/"
        ]));
        for alone in ["--remote-bin", "--ssh-config"] {
            let refusal = run(parse(&[alone, "x", "http://h:1/"]));
            assert!(
                matches!(&refusal, Err(crate::cli::CmdError::Input(e)) if e.to_string().contains("are for --load-hosts")),
                "{alone}: {refusal:?}"
            );
        }
        assert!(refused(&[
            "--load-hosts",
            "-oProxyCommand=x",
            "http://h:1/"
        ]));
        assert!(!refused(&["--load-hosts", "a,u@b", "http://h:1/"]));
    }

    #[test]
    fn rates_are_positive_and_finite() {
        assert_eq!(rate("2500"), Ok(2500.0));
        assert_eq!(rate("0.5"), Ok(0.5));
        for bad in ["0", "-1", "inf", "nan", "fast"] {
            assert!(rate(bad).is_err(), "{bad}");
        }
    }
}
