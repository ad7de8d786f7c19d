//! `--trace` on every setup: real clients, then the CSV and the Chrome-trace
//! JSON are checked against what was sent. Overflow and the record limit
//! are counted and reported, and the files stay valid.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use h2lab::trace::{CsvRow as Row, Kind, TraceConfig};
use h2lab::{Dispatch, Setup, TlsProvider};
use serde_json::Value;
use support::{config, run, serve, tool};

setup_tests!(trace_records_every_client_action_and_response);

/// The columns, in their order, as the README documents them (the file
/// must start with exactly this line).
const CSV_HEADER: &str = "ts_ns,dur_ns,client,kind,name,stream,bytes,state";

fn prefix(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("traces")
        .join(name)
}

/// The action log, read as `compare` reads it: through the schema's
/// `CsvRow` and the header it writes.
fn read_csv(path: &Path) -> Vec<Row> {
    h2lab::csv_file::read(path, CSV_HEADER, "an action log").unwrap()
}

/// Parses the JSON and checks its tracks: one named track per client, and
/// no two slices on a track that overlap without nesting (Perfetto rejects
/// those). Returns the `metadata` object.
fn check_json(path: &Path, clients: &BTreeSet<u64>) -> Value {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("valid JSON");
    let events = doc["traceEvents"].as_array().expect("traceEvents");
    let names: BTreeMap<u64, String> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| {
            (
                e["tid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut expected: BTreeMap<u64, String> = clients
        .iter()
        .map(|c| (*c, format!("client {c}")))
        .collect();
    if names.contains_key(&0) {
        expected.insert(0, "poll loop".into()); // poll's own wait
    }
    assert_eq!(names, expected, "one named track per client");
    let mut slices: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["ph"] == "X") {
        let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
        slices
            .entry(e["tid"].as_u64().unwrap())
            .or_default()
            .push((ts, ts + dur));
    }
    for (tid, mut track) in slices {
        track.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut open: Vec<f64> = Vec::new(); // ends of the enclosing slices
        for (start, end) in track {
            while open.last().is_some_and(|&e| e <= start) {
                open.pop();
            }
            if let Some(&outer) = open.last() {
                assert!(
                    end <= outer,
                    "client {tid}: slice {start}..{end} overlaps one ending at {outer}"
                );
            }
            open.push(end);
        }
    }
    let meta = doc["metadata"].clone();
    assert_eq!(meta["complete"], true, "{meta}");
    meta
}

fn trace_records_every_client_action_and_response(setup: Setup) {
    let name = setup.to_string().replace('/', "-");
    check_trace(config(setup), &name);
}

/// The tokio worker threads each send their last batch when they end.
#[test]
fn tokio_multi_thread_runtime_is_traced_completely() {
    let cfg = h2lab::ServerConfig {
        threads: 2,
        ..config(support::setup(Dispatch::Tokio, TlsProvider::Rustls))
    };
    check_trace(cfg, "tokio-threads-2");
}

fn check_trace(cfg: h2lab::ServerConfig, name: &str) {
    let setup = cfg.setup();
    let trace = TraceConfig::new(prefix(name));
    let server = h2lab::start(&h2lab::ServerConfig {
        trace: Some(trace.clone()),
        ..cfg
    })
    .unwrap();
    let out = run(tool("h2load")
        .args(["-n", "60", "-c", "3", "-m", "5", "-T", "10", "-N", "10"])
        .arg(server.url()));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("60 succeeded, 0 failed"),
        "{setup}"
    );
    let stats = server.stop();
    let summary = stats.trace.expect("traced").expect("trace completed");
    assert_eq!((summary.dropped, summary.unrecorded), (0, 0), "{setup}");

    let rows = read_csv(&trace.csv_path());
    assert_eq!(rows.len() as u64, summary.written, "{setup}");
    let clients: BTreeSet<u64> = rows
        .iter()
        .filter(|r| r.kind != Kind::Loop)
        .map(|r| r.client)
        .collect();
    assert_eq!(
        clients,
        (1..=3).collect(),
        "{setup}: client ids are 1-based, in accept order"
    );
    let responses = rows
        .iter()
        .filter(|r| r.kind == Kind::FrameOut && r.name == "DATA" && r.state.contains("END_STREAM"))
        .count();
    assert_eq!(
        responses, 60,
        "{setup}: one DATA with END_STREAM per request"
    );
    let requests = rows
        .iter()
        .filter(|r| {
            r.kind == Kind::FrameIn && r.name == "HEADERS" && r.state.contains("END_STREAM")
        })
        .count();
    assert_eq!(requests, 60, "{setup}");
    let actions: Vec<&Row> = rows.iter().filter(|r| r.kind == Kind::Action).collect();
    for expected in ["read_socket", "engine", "write_socket"] {
        assert!(
            actions.iter().any(|r| r.name == expected),
            "{setup}: no {expected}"
        );
    }
    if setup.tls.is_tls() {
        assert!(actions.iter().any(|r| r.name == "handshake"), "{setup}");
        assert!(actions.iter().any(|r| r.name == "decrypt"), "{setup}");
    }
    assert!(
        actions.iter().all(|r| r.dur_ns > 0),
        "{setup}: every action has a duration"
    );
    for conn in ["accept", "close"] {
        let n = rows
            .iter()
            .filter(|r| r.kind == Kind::Conn && r.name == conn)
            .count();
        assert_eq!(n, 3, "{setup}: {conn} per client");
    }
    if setup.dispatch == Dispatch::Poll {
        // The loop's own wait, on its own track (client 0), with the time
        // it was ready to run but not running (read after some waits).
        let waits: Vec<&Row> = rows.iter().filter(|r| r.kind == Kind::Loop).collect();
        assert!(!waits.is_empty(), "{setup}: no poll_wait");
        for w in &waits {
            assert_eq!((w.client, w.name.as_str()), (0, "poll_wait"), "{setup}");
            assert!(
                w.state.is_empty() || w.state.starts_with("runq_ns="),
                "{setup}: {:?}",
                w.state
            );
        }
        assert!(
            waits.iter().any(|w| w.state.starts_with("runq_ns=")),
            "{setup}: no wait has its run-queue delay"
        );
        for r in &actions {
            assert_eq!(
                r.state.len(),
                h2lab::trace::Flags::COUNT,
                "{setup}: flags before {}: {:?}",
                r.name,
                r.state
            );
        }
    }
    let other = check_json(&trace.json_path(), &clients);
    assert_eq!(other["records"], summary.written, "{setup}");
    assert_eq!(other["dropped"], 0);
}

/// At full speed with the default queue: the built-in load with 100
/// requests in flight on 5 connections; every response is in the trace
/// (one DATA with END_STREAM each), nothing is lost, and the metadata
/// counts what the CSV holds.
#[test]
fn a_full_speed_run_loses_nothing() {
    let trace = TraceConfig::new(prefix("full-speed"));
    let server = h2lab::start(&h2lab::ServerConfig {
        trace: Some(trace.clone()),
        ..config(support::setup(Dispatch::Poll, TlsProvider::None))
    })
    .unwrap();
    let out = run(std::process::Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["load", "-n", "100000", "-c", "5", "-m", "100"])
        .arg(server.url()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stats = server.stop();
    let summary = stats.trace.expect("traced").expect("trace completed");
    assert_eq!((summary.dropped, summary.unrecorded), (0, 0), "{summary}");
    let rows = read_csv(&trace.csv_path());
    assert_eq!(rows.len() as u64, summary.written);
    let responses = rows
        .iter()
        .filter(|r| r.kind == Kind::FrameOut && r.name == "DATA" && r.state.contains("END_STREAM"))
        .count() as u64;
    assert_eq!(responses, stats.responses);
    assert_eq!(responses, 100_000);
    let meta = h2lab::trace::TraceMeta::read(&trace.meta_path()).unwrap();
    assert_eq!(
        (meta.records, meta.dropped, meta.complete),
        (summary.written, 0, true)
    );
    assert!(
        meta.span_cost_ns > 0.0 && meta.event_cost_ns > 0.0,
        "{meta:?}"
    );
}

/// `h2lab serve` records through the process's global dispatcher and
/// measures what a record costs through it, at start, in a scratch state:
/// none of the 28,000 records it times reaches the trace, no thread of its
/// own is named, and the trace holds exactly the one client's requests.
#[test]
fn the_cost_measurement_leaves_nothing_in_the_trace() {
    let prefix = prefix("process-wide");
    let s = serve(&["--dispatch", "poll", "--trace", prefix.to_str().unwrap()]);
    let out = run(tool("h2load").args(["-n", "10", "-c", "1"]).arg(&s.url));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("10 succeeded"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(s.stop_with("TERM").status.success());
    let trace = TraceConfig::new(&prefix);
    let meta = h2lab::trace::TraceMeta::read(&trace.meta_path()).unwrap();
    assert!(meta.complete, "{meta:?}");
    assert_eq!(meta.thread_names, "h2lab-poll");
    assert!(
        meta.span_cost_ns > 0.0 && meta.event_cost_ns > 0.0,
        "{meta:?}"
    );
    let rows = read_csv(&trace.csv_path());
    assert_eq!(rows.len() as u64, meta.records);
    let clients: BTreeSet<u64> = rows.iter().map(|r| r.client).collect();
    assert_eq!(
        clients,
        BTreeSet::from([0, 1]),
        "the poll loop and one client"
    );
    let ends = rows
        .iter()
        .filter(|r| r.kind == Kind::FrameOut && r.name == "DATA" && r.state.contains("END_STREAM"))
        .count();
    assert_eq!(ends, 10);
    assert!(rows.len() < 200, "{} records for 10 requests", rows.len());
}

/// A queue of one record under load: most records are dropped, the count
/// is reported in the summary and the JSON, and both files are valid.
#[test]
fn a_full_queue_drops_and_counts_and_the_files_stay_valid() {
    let (trace, summary) = support::lossy_trace(prefix("tiny-queue"), 2000);
    let rows = read_csv(&trace.csv_path());
    assert_eq!(rows.len() as u64, summary.written);
    let clients: BTreeSet<u64> = rows
        .iter()
        .filter(|r| r.kind != Kind::Loop)
        .map(|r| r.client)
        .collect();
    let other = check_json(&trace.json_path(), &clients);
    assert_eq!(other["dropped"], summary.dropped);
}

/// `--trace-limit` through the real binary: the rest is counted, reported
/// on stop, and in the JSON; SIGTERM leaves both files complete.
#[test]
fn trace_limit_counts_what_it_leaves_out() {
    let p = prefix("limit");
    let s = serve(&[
        "--dispatch",
        "thread",
        "--tls",
        "rustls",
        "--trace",
        p.to_str().unwrap(),
        "--trace-limit",
        "50",
    ]);
    let out = run(tool("h2load")
        .args(["-n", "200", "-c", "2", "-m", "10"])
        .arg(&s.url));
    assert!(String::from_utf8_lossy(&out.stdout).contains("200 succeeded"));
    let out = s.stop_with("TERM");
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("50 records written, 0 dropped (queue full), "),
        "{err}"
    );
    let unrecorded: u64 = err
        .split(" dropped (queue full), ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("unrecorded count");
    assert!(unrecorded > 0, "{err}");
    let rows = read_csv(&PathBuf::from(format!("{}.csv", p.display())));
    assert_eq!(rows.len(), 50);
    let clients: BTreeSet<u64> = rows
        .iter()
        .filter(|r| r.kind != Kind::Loop)
        .map(|r| r.client)
        .collect();
    let other = check_json(&PathBuf::from(format!("{}.json", p.display())), &clients);
    assert_eq!(other["unrecorded"], unrecorded);
}

#[test]
fn an_unwritable_trace_path_is_an_error_at_start() {
    let err = h2lab::start(&h2lab::ServerConfig {
        trace: Some(TraceConfig::new("/proc/no-such-dir/run")),
        ..Default::default()
    })
    .err()
    .expect("refused");
    assert!(
        err.to_string()
            .starts_with("cannot create /proc/no-such-dir"),
        "{err}"
    );
}
