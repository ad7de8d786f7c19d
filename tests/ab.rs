//! `h2lab ab`: paired runs of two real servers under the built-in load.
//! Verdicts that cannot be noise: a known cost of 200 µs per request on
//! one side (several times what a request costs this debug server) is
//! found, with an interval far from 1, and fails a CI gate.

mod support;

use std::process::Command;

use support::run;

fn ab(args: &[&str]) -> std::process::Output {
    run(Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .arg("ab")
        .args(args))
}

#[test]
fn a_known_cost_is_found_and_fails_the_gate() {
    let out = ab(&[
        "--a",
        "--dispatch poll",
        "--b",
        "--dispatch poll --work cpu:200us",
        "-c",
        "1",
        "-m",
        "1",
        "--pairs",
        "4",
        "--duration",
        "0.3",
        "--warm-up",
        "0.1",
        "--json",
        "--fail-if-slower",
        "20",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["pairs"], 4, "{report}");
    let cpu = &report["figures"][0];
    assert_eq!(cpu["figure"], "CPU µs/request");
    // 200 µs of work on a request that costs tens of µs: several times A.
    assert!(cpu["ratio_low"].as_f64().unwrap() > 1.2, "{report}");
    assert!(
        report["verdict"].as_str().unwrap().starts_with("B costs"),
        "{report}"
    );
    assert_eq!(report["samples"].as_array().unwrap().len(), 4);
    // Without the gate, the same finding is no failure.
    let table = ab(&[
        "--a",
        "--dispatch tokio",
        "--b",
        "--dispatch tokio --work cpu:200us",
        "-c",
        "1",
        "-m",
        "1",
        "--pairs",
        "4",
        "--duration",
        "0.2",
        "--warm-up",
        "0",
    ]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(table.status.code(), Some(0), "{text}");
    assert!(
        text.contains("verdict: B costs") && text.contains("95% CI"),
        "{text}"
    );
}

#[test]
fn a_server_that_cannot_start_is_named_in_one_line() {
    let out = ab(&["--b", "--dispatch nope", "--pairs", "3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("B (`serve --dispatch nope`)") && err.lines().count() == 1,
        "{err}"
    );
    let out = ab(&["--a", "--body 1TiB", "--b", "", "--pairs", "3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("A (`serve --body 1TiB`)"), "{err}");
}
