//! `serve --work`: each request's work, done on the serving thread by both
//! engines, charged to the server and traced as a `work` slice inside the
//! engine slice that answers it. Verdicts without the clock: CPU time the
//! work must produce, slices counted, and which slices overlap.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use h2lab::trace::{CsvRow, Kind, TraceConfig};
use support::{run, serve, tool};

/// `h2load -n N -c C -m 1` against `url`, every request answered.
fn load(url: &str, requests: u32, clients: u32) {
    let out = run(tool("h2load")
        .args([
            "-n",
            &requests.to_string(),
            "-c",
            &clients.to_string(),
            "-m",
            "1",
        ])
        .arg(url));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{requests} succeeded, 0 failed")),
        "{url}: {text}"
    );
}

/// A traced server with `args`, `requests` from `clients` clients (one in
/// flight each), stopped cleanly: the rows of its action log.
fn traced_run(name: &str, args: &[&str], requests: u32, clients: u32) -> Vec<CsvRow> {
    let prefix = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("work")
        .join(name);
    let mut args = args.to_vec();
    args.extend(["--trace", prefix.to_str().unwrap()]);
    let s = serve(&args);
    load(&s.url, requests, clients);
    assert!(s.stop_with("TERM").status.success(), "{name}");
    let csv = TraceConfig::new(&prefix).csv_path();
    h2lab::csv_file::read(&csv, h2lab::trace::CSV_HEADER, "an action log").unwrap()
}

/// 80 requests of `cpu:2ms` cost the server at least 160 ms of CPU time,
/// 16 clock ticks, on each engine and every kind of dispatch. The kernel
/// rounds each of user and system time down to a tick, at both readings:
/// at least 12 ticks must show.
#[test]
fn cpu_work_is_charged_to_the_server() {
    for setup in [
        ["single", "mini", "none"],
        ["thread", "h2", "rustls"],
        ["tokio", "mini", "openssl"],
        ["tokio", "h2", "none"],
        ["poll", "mini", "rustls"],
    ] {
        let [dispatch, engine, tls] = setup;
        let s = serve(&[
            "--dispatch",
            dispatch,
            "--engine",
            engine,
            "--tls",
            tls,
            "--work",
            "cpu:2ms",
        ]);
        let before = support::cpu_ticks(s.child.id());
        load(&s.url, 80, 1);
        let ticks = support::cpu_ticks(s.child.id()) - before;
        assert!(
            ticks >= 12,
            "{setup:?}: {ticks} ticks for 80 × 2 ms of work"
        );
        assert!(s.stop_with("TERM").status.success(), "{setup:?}");
    }
}

/// A traced run: one `work` slice per response, each at least as long as
/// the work's CPU time, inside an `engine` slice of the same client, on
/// both engines.
#[test]
fn every_request_has_a_work_slice_inside_its_engine_slice() {
    for (engine, tls) in [("mini", "rustls"), ("h2", "none")] {
        let rows = traced_run(
            &format!("slices-{engine}"),
            &[
                "--dispatch",
                "tokio",
                "--engine",
                engine,
                "--tls",
                tls,
                "--work",
                "cpu:200us",
            ],
            30,
            3,
        );
        let work: Vec<&CsvRow> = rows
            .iter()
            .filter(|r| r.kind == Kind::Action && r.name == "work")
            .collect();
        let answered = rows.iter().filter(|r| r.is_response()).count();
        assert_eq!((work.len(), answered), (30, 30), "{engine}");
        for w in &work {
            assert!(w.dur_ns >= 200_000, "{engine}: {w:?}");
            let inside = rows.iter().any(|e| {
                e.kind == Kind::Action
                    && e.name == "engine"
                    && e.client == w.client
                    && e.ts_ns <= w.ts_ns
                    && w.ts_ns + w.dur_ns <= e.ts_ns + e.dur_ns
            });
            assert!(inside, "{engine}: {w:?} outside every engine slice");
        }
    }
}

/// A blocking handler stalls a loop that serves every client, and not a
/// thread per connection. Read off the trace, not the clock: with four
/// clients at once, the `work` slices of `poll` never overlap (one thread
/// does them all, one after another), while those of `thread` do.
#[test]
fn a_sleeping_handler_holds_the_poll_loop_and_not_the_threads() {
    let overlaps = |dispatch: &str| {
        let rows = traced_run(
            &format!("sleep-{dispatch}"),
            &["--dispatch", dispatch, "--work", "sleep:5ms"],
            40,
            4,
        );
        let mut work: Vec<(u64, u64)> = rows
            .iter()
            .filter(|r| r.name == "work")
            .map(|r| (r.ts_ns, r.ts_ns + r.dur_ns))
            .collect();
        assert_eq!(work.len(), 40, "{dispatch}");
        work.sort_unstable();
        work.windows(2).filter(|w| w[1].0 < w[0].1).count()
    };
    assert_eq!(overlaps("poll"), 0, "poll's work slices overlap");
    assert!(overlaps("thread") > 0, "thread's work slices never overlap");
}

/// A spec that is not one is a usage error: one line, exit 2.
#[test]
fn a_bad_work_spec_is_refused() {
    for (spec, says) in [
        ("cpu", "is not a work spec"),
        ("nap:1ms", "is not a kind of work"),
        ("cpu:soon", "is not a duration"),
        ("sleep:0ms", "is not between 0 and 60 seconds"),
        ("delay:2m", "is not a duration"),
    ] {
        let out = run(Command::new(env!("CARGO_BIN_EXE_h2lab")).args(["serve", "--work", spec]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{spec}: {err}");
        assert!(
            err.contains(says) && err.lines().count() == 1,
            "{spec}: {err}"
        );
    }
}

/// Each request's wait from its HEADERS in to the frame that ended its
/// answer, per (client, stream), off the trace: (start, end) in ns.
fn waits(rows: &[CsvRow]) -> Vec<(u64, u64)> {
    let mut asked = std::collections::HashMap::new();
    let mut waits = Vec::new();
    for r in rows {
        if r.kind == Kind::FrameIn && r.name == "HEADERS" {
            asked.insert((r.client, r.stream), r.ts_ns);
        } else if r.is_response() {
            if let Some(t) = asked.remove(&(r.client, r.stream)) {
                waits.push((t, r.ts_ns));
            }
        }
    }
    waits.sort_unstable();
    waits
}

/// How many intervals begin before the previous one (in start order) ends.
fn overlapping(intervals: &[(u64, u64)]) -> usize {
    intervals.windows(2).filter(|w| w[1].0 < w[0].1).count()
}

/// `delay:` makes each answer due that much later without holding the
/// thread: on one `poll` loop, and on a current-thread tokio runtime with
/// the `h2` engine, every answer comes at least 20 ms after its request,
/// and the waits of four clients overlap (a held thread would serve them
/// one after another). On `thread` and `single` the delay holds too.
#[test]
fn a_delay_holds_the_answer_and_not_the_thread() {
    for (name, args, overlap) in [
        ("poll", &["--dispatch", "poll", "--tls", "rustls"][..], true),
        (
            "tokio-h2",
            &["--dispatch", "tokio", "--engine", "h2"][..],
            true,
        ),
        (
            "tokio-mini",
            &["--dispatch", "tokio", "--tls", "openssl"][..],
            true,
        ),
        ("thread", &["--dispatch", "thread"][..], true),
        (
            "single-h2",
            &["--dispatch", "single", "--engine", "h2"][..],
            false,
        ),
    ] {
        let clients = if overlap { 4 } else { 1 };
        let mut args = args.to_vec();
        args.extend(["--work", "delay:20ms"]);
        let rows = traced_run(&format!("delay-{name}"), &args, 24, clients);
        let waits = waits(&rows);
        assert_eq!(waits.len(), 24, "{name}");
        for (start, end) in &waits {
            assert!(
                end - start >= 20_000_000,
                "{name}: answered after {} ns",
                end - start
            );
        }
        if overlap {
            assert!(overlapping(&waits) > 0, "{name}: the waits never overlap");
        }
        assert!(
            !rows.iter().any(|r| r.name == "work"),
            "{name}: a delay is no work"
        );
    }
}

/// `--offload N` moves `sleep:` work off the loop: on `poll`, on `uring`
/// and on a current-thread tokio runtime (both engines), the `work` slices of four
/// clients overlap, which one loop thread doing them cannot (see
/// `a_sleeping_handler_holds_the_poll_loop_and_not_the_threads`); and the
/// server runs its N workers.
#[test]
fn offloaded_work_runs_beside_the_loop() {
    for (name, args) in [
        ("poll", &["--dispatch", "poll", "--tls", "rustls"][..]),
        ("tokio-mini", &["--dispatch", "tokio"][..]),
        (
            "tokio-h2",
            &["--dispatch", "tokio", "--engine", "h2", "--tls", "openssl"][..],
        ),
        ("uring", &["--dispatch", "uring", "--tls", "openssl"][..]),
    ] {
        if name == "uring" && support::skip_uring() {
            continue;
        }
        let mut args = args.to_vec();
        args.extend(["--work", "sleep:5ms", "--offload", "4"]);
        let rows = traced_run(&format!("offload-{name}"), &args, 40, 4);
        let mut work: Vec<(u64, u64)> = rows
            .iter()
            .filter(|r| r.name == "work")
            .map(|r| (r.ts_ns, r.ts_ns + r.dur_ns))
            .collect();
        assert_eq!(work.len(), 40, "{name}");
        work.sort_unstable();
        assert!(
            overlapping(&work) > 0,
            "{name}: the work slices never overlap"
        );
        assert_eq!(waits(&rows).len(), 40, "{name}: every request answered");
    }
    let s = serve(&["--dispatch", "poll", "--work", "cpu:1ms", "--offload", "3"]);
    // A thread takes its name once it runs (std names it from inside):
    // look again for a moment rather than read the names once.
    let pid = s.child.id();
    let workers = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
            .filter(|name| name.starts_with("h2lab-work-"))
            .count()
    };
    let named_by = Instant::now() + Duration::from_secs(5);
    while workers() < 3 && Instant::now() < named_by {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(workers(), 3);
    assert!(s.stop_with("TERM").status.success());
}

/// `--offload` where it means nothing is refused with one line, exit 2:
/// on a dispatch without a loop to free, and on a blind server without
/// `--work` that holds a thread (reading, the routes bring work).
#[test]
fn offload_is_refused_where_it_means_nothing() {
    for (args, says) in [
        (
            &["--dispatch", "single", "--work", "cpu:1ms"][..],
            "only for --dispatch poll, uring and tokio",
        ),
        (
            &["--dispatch", "thread", "--work", "sleep:1ms"][..],
            "only for --dispatch poll, uring and tokio",
        ),
        // Blind, no route brings work: only --work can.
        (
            &["--dispatch", "poll", "--blind"][..],
            "needs work that holds a thread",
        ),
        (
            &["--dispatch", "tokio", "--blind", "--work", "delay:1ms"][..],
            "needs work that holds a thread",
        ),
    ] {
        let out = run(Command::new(env!("CARGO_BIN_EXE_h2lab"))
            .args(["serve", "--offload", "2"])
            .args(args));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(says) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}
