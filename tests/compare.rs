//! `h2lab compare` on real action logs recorded from servers, and on small
//! hand-made logs for each exit status.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use h2lab::trace::TraceConfig;
use h2lab::{Dispatch, TlsProvider};
use support::{config, run, tool};

fn dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compare");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn compare(args: &[&Path], extra: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .arg("compare")
        .args(args)
        .args(extra))
}

/// Records `h2load -n N -c 1 -m M` against a traced poll server.
fn record(name: &str, pipeline: &str) -> PathBuf {
    let trace = TraceConfig::new(dir().join(name));
    let server = h2lab::start(&h2lab::ServerConfig {
        trace: Some(trace.clone()),
        ..config(support::setup(Dispatch::Poll, TlsProvider::Rustls))
    })
    .unwrap();
    let out = run(tool("h2load")
        .args(["-n", "500", "-c", "1", "-m", pipeline])
        .arg(server.url()));
    assert!(String::from_utf8_lossy(&out.stdout).contains("500 succeeded"));
    let summary = server.stop().trace.unwrap().unwrap();
    assert_eq!(summary.dropped + summary.unrecorded, 0);
    trace.csv_path()
}

/// Runs of one setup compare clean with the defaults (counts only, 10%),
/// each way round: durations, which move far more between two runs on a
/// shared machine, are judged only when asked.
#[test]
fn runs_of_one_setup_compare_clean_with_the_defaults() {
    let runs: Vec<PathBuf> = (0..3).map(|i| record(&format!("same-{i}"), "1")).collect();
    for (a, b) in [(0, 1), (1, 2), (2, 0), (1, 0)] {
        let out = compare(&[&runs[a], &runs[b]], &[]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{a} vs {b}: {text}");
        assert!(text.contains("(500 requests, 1 clients)"), "{text}");
        assert!(
            text.contains("no regression beyond the thresholds"),
            "{text}"
        );
        // Their metadata says nothing was lost: no warning.
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A trace that lost records is not compared unless asked, and says so.
#[test]
fn a_trace_that_lost_records_is_refused_unless_allowed() {
    let good = record("whole", "10");
    let (trace, _) = support::lossy_trace(dir().join("lossy"), 20000);
    let lossy = trace.csv_path();
    let out = compare(&[&good, &lossy], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("WARNING") && err.contains("records dropped"),
        "{err}"
    );
    let out = compare(&[&lossy, &good], &["--allow-losses"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("WARNING"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("usual sequence"));
}

/// `-m 1` against `-m 10`: ten times the writes per request, flagged.
#[test]
fn pipelining_difference_shows_in_the_table_and_fails() {
    let a = record("m10", "10");
    let b = record("m1", "1");
    let out = compare(&[&a, &b], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let writes: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("write_socket "))
        .expect("a write_socket line")
        .split_whitespace()
        .collect();
    let (per_a, per_b): (f64, f64) = (writes[1].parse().unwrap(), writes[2].parse().unwrap());
    assert!(per_b > 5.0 * per_a, "{text}");
    assert!(text.contains("regressions:\n  "), "{text}");
    assert!(
        text.contains("A usual sequence (") && text.contains("10.0 responses each"),
        "{text}"
    );
}

const HEADER: &str = "ts_ns,dur_ns,client,kind,name,stream,bytes,state\n";

/// A log of `requests` responses, each preceded by the given actions
/// (name, duration ns).
fn log(name: &str, requests: usize, actions: &[(&str, u64)]) -> PathBuf {
    let mut text = HEADER.to_string();
    let mut ts = 1000;
    text.push_str(&format!("{ts},5000,1,conn,accept,,0,\n"));
    for i in 0..requests {
        for (action, dur) in actions {
            ts += 10_000;
            text.push_str(&format!("{ts},{dur},1,action,{action},,100,\n"));
            if *action == "engine" {
                text.push_str(&format!(
                    "{},0,1,frame-out,DATA,{},12,END_STREAM\n",
                    ts + 1,
                    2 * i + 1
                ));
            }
        }
    }
    let path = dir().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const BASE: &[(&str, u64)] = &[
    ("read_socket", 1000),
    ("engine", 2000),
    ("write_socket", 3000),
];

#[test]
fn exit_status_follows_the_thresholds() {
    let a = log("base.csv", 10, BASE);
    assert_eq!(compare(&[&a, &a], &[]).status.code(), Some(0));

    // One more read per request for 2 of 10 requests: +20% read_socket count.
    let mut text = std::fs::read_to_string(&a).unwrap();
    text.push_str(
        "999000,1000,1,action,read_socket,,100,\n999100,1000,1,action,read_socket,,100,\n",
    );
    let more = dir().join("more-reads.csv");
    std::fs::write(&more, text).unwrap();
    let out = compare(&[&a, &more], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("read_socket: 1.200 per request, +20.0% over 1.000"));
    assert_eq!(
        compare(&[&a, &more], &["--threshold", "25"]).status.code(),
        Some(0)
    );

    // Engine 50% slower.
    let slow = log(
        "slow.csv",
        10,
        &[
            ("read_socket", 1000),
            ("engine", 3000),
            ("write_socket", 3000),
        ],
    );
    assert_eq!(
        compare(&[&a, &slow], &[]).status.code(),
        Some(0),
        "durations are judged only when asked"
    );
    let out = compare(&[&a, &slow], &["--duration-threshold", "10"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("engine: mean 3.00 µs, +50.0% over 2.00 µs")
    );
    assert_eq!(
        compare(&[&a, &slow], &["--duration-threshold", "60"])
            .status
            .code(),
        Some(0)
    );
    // Faster is never a regression.
    assert_eq!(compare(&[&slow, &a], &[]).status.code(), Some(0));

    // An action A never took.
    let extra = log(
        "extra.csv",
        10,
        &[
            ("read_socket", 1000),
            ("decrypt", 500),
            ("engine", 2000),
            ("write_socket", 3000),
        ],
    );
    let out = compare(&[&a, &extra], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("decrypt: new in B"));
}

#[test]
fn unreadable_input_exits_2_with_the_reason() {
    let good = log("good.csv", 3, BASE);
    let cases: Vec<(PathBuf, &str)> = vec![
        (dir().join("missing.csv"), "cannot read"),
        (
            write("bad-header.csv", "a,b,c\n"),
            "bad-header.csv:1: header",
        ),
        (
            write("bad-row.csv", &format!("{HEADER}1,2,3,action,x,,4\n")),
            "bad-row.csv:2: 7 columns",
        ),
        (
            write("bad-kind.csv", &format!("{HEADER}1,2,3,oops,x,,4,\n")),
            "unknown kind",
        ),
        (
            write(
                "no-requests.csv",
                &format!("{HEADER}1,2,3,action,read_socket,,4,\n"),
            ),
            "no responses",
        ),
        (write("empty.csv", ""), "empty file"),
    ];
    for (bad, reason) in cases {
        for order in [
            [good.as_path(), bad.as_path()],
            [bad.as_path(), good.as_path()],
        ] {
            let out = compare(&order, &[]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{}: {err}", bad.display());
            assert!(err.contains(reason), "{}: {err}", bad.display());
        }
    }
    let out = compare(&[&good, &good], &["--threshold", "-5"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
}

fn write(name: &str, text: &str) -> PathBuf {
    let path = dir().join(name);
    std::fs::write(&path, text).unwrap();
    path
}
