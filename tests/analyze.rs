//! `h2lab analyze` on real traces: servers of three designs traced under
//! h2load, every response counted, every request's components summing to
//! its latency, and the SQL package (`sql/h2lab`, run by Perfetto's own
//! trace processor on the JSON of the same trace) agreeing with it on
//! every figure they share.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{lossy_trace, repo_path, run, serve, tool, trace_query_with};

fn dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("analyze");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A server started with `setup` (serve's flags), traced to `name`, under
/// `requests` requests from h2load (3 connections × 5 in flight), stopped
/// with SIGINT: the trace's prefix.
fn traced(name: &str, setup: &[&str], requests: u32) -> PathBuf {
    let prefix = dir().join(name);
    let s = serve(&[setup, &["--trace", prefix.to_str().unwrap()]].concat());
    let n = requests.to_string();
    let out = run(tool("h2load")
        .args(["-n", &n, "-c", "3", "-m", "5", "-T", "10", "-N", "10"])
        .arg(&s.url));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{n} succeeded, 0 failed")), "{text}");
    let out = s.stop_with("INT");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    prefix
}

fn analyze(args: &[&OsStr]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .arg("analyze")
        .args(args))
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The SQL package's tables on the trace's JSON: the rows of `sql`
/// (after `INCLUDE PERFETTO MODULE h2lab.actions`) by column name.
fn sql(prefix: &Path, query: &str) -> Vec<BTreeMap<String, String>> {
    let package = repo_path("sql/h2lab");
    let flags = [OsStr::new("--add-sql-package"), package.as_os_str()];
    let json = PathBuf::from(format!("{}.json", prefix.display()));
    let rows = trace_query_with(
        &flags,
        &json,
        &format!("INCLUDE PERFETTO MODULE h2lab.actions; {query}"),
    );
    let (head, rows) = rows.split_first().expect("a header");
    rows.iter()
        .map(|r| head.iter().cloned().zip(r.iter().cloned()).collect())
        .collect()
}

fn num(v: &str) -> f64 {
    v.parse().unwrap_or_else(|_| panic!("not a number: {v:?}"))
}

/// Within 1% (or 2 ns, for figures near 0).
fn agree(what: &str, ours: f64, theirs: f64) {
    assert!(
        (ours - theirs).abs() <= (0.01 * ours.abs().max(theirs.abs())).max(2.0),
        "{what}: analyze {ours}, SQL {theirs}"
    );
}

/// Everything `analyze` and the SQL package both say about one trace.
fn check(name: &str, setup: &[&str]) {
    const REQUESTS: u64 = 300;
    let prefix = traced(name, setup, REQUESTS as u32);
    let requests_csv = dir().join(format!("{name}-requests.csv"));
    let out = analyze(&[
        prefix.as_os_str(),
        OsStr::new("--json"),
        OsStr::new("--requests"),
        requests_csv.as_os_str(),
    ]);
    let all: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let a = &all[0];
    // Exactly the server's responses, from three clients.
    assert_eq!(a["requests"], REQUESTS, "{name}: {a:#}");
    assert_eq!(a["clients"], 3, "{name}");
    let per_client: u64 = a["per_client"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(per_client, REQUESTS, "{name}");
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.meta.json", prefix.display())).unwrap(),
    )
    .unwrap();
    assert_eq!(
        meta["responses"], REQUESTS,
        "{name}: the server's own count"
    );
    assert!(
        a["caveats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !c.as_str().unwrap().contains("lost")),
        "{name}: {}",
        a["caveats"]
    );

    // Each request's components sum to its latency.
    let mut reader = csv::Reader::from_path(&requests_csv).unwrap();
    let head = reader.headers().unwrap().clone();
    let mut each: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
    for row in reader.records() {
        let row = row.unwrap();
        let v: Vec<u64> = row.iter().skip(1).map(|x| x.parse().unwrap()).collect();
        let (latency, parts) = (v[3], &v[4..]);
        let sum: u64 = parts.iter().sum();
        assert!(latency > 0, "{name}: {row:?}");
        assert!(
            sum.abs_diff(latency) * 100 <= latency,
            "{name}: components {sum} ns against a latency of {latency} ns: {row:?}"
        );
        each.insert((v[0], v[1]), v[3..].to_vec());
    }
    assert_eq!(each.len() as u64, REQUESTS, "{name}");
    let components: Vec<String> = head
        .iter()
        .skip(5)
        .map(|h| h.trim_end_matches("_ns").to_string())
        .collect();

    // The SQL package, request by request ...
    let rows = sql(
        &prefix,
        "select r.client, r.stream, r.latency, c.component, c.dur \
         from h2lab_request r join h2lab_request_component c on c.request_id = r.id",
    );
    let mut seen = 0;
    for row in &rows {
        let key = (num(&row["client"]) as u64, num(&row["stream"]) as u64);
        let ours = each
            .get(&key)
            .unwrap_or_else(|| panic!("{name}: request {key:?} only in SQL"));
        // Request by request, to the nanosecond: both cut the same
        // integer timestamps by the same rules.
        assert_eq!(
            ours[0] as f64,
            num(&row["latency"]),
            "{name} {key:?} latency: analyze, SQL"
        );
        let k = components
            .iter()
            .position(|c| *c == row["component"])
            .unwrap_or_else(|| panic!("{name}: component {}", row["component"]));
        assert_eq!(
            ours[1 + k] as f64,
            num(&row["dur"]),
            "{name} {key:?} {}: analyze, SQL",
            row["component"]
        );
        seen += 1;
    }
    assert_eq!(seen, REQUESTS as usize * components.len(), "{name}");
    // The write each request names is the one that ends it.
    let wrong = sql(
        &prefix,
        "select count(*) as n from h2lab_request r join slice s on s.id = r.write_id \
         where s.name != 'write_socket' or s.ts + s.dur != r.end_ts",
    );
    assert_eq!(wrong[0]["n"], "0", "{name}");

    // ... and in sum: latency, components, actions, the loop, the clients.
    let l = &sql(&prefix, "select * from h2lab_latency")[0];
    for (k, v) in [
        ("requests", "requests"),
        ("mean_ns", "mean_ns"),
        ("p50_ns", "p50_ns"),
        ("p90_ns", "p90_ns"),
        ("p99_ns", "p99_ns"),
        ("max_ns", "max_ns"),
    ] {
        let ours = match k {
            "requests" => a["requests"].as_f64().unwrap(),
            _ => a["latency"][k].as_f64().unwrap(),
        };
        agree(&format!("{name} latency {k}"), ours, num(&l[v]));
    }
    let summary = sql(&prefix, "select * from h2lab_component_summary");
    assert_eq!(summary.len(), components.len(), "{name}: {summary:?}");
    for c in summary {
        let ours = a["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == c["component"].as_str())
            .unwrap_or_else(|| panic!("{name}: {}", c["component"]));
        for k in ["mean_ns", "p50_ns", "p99_ns", "max_ns"] {
            agree(
                &format!("{name} {} {k}", c["component"]),
                ours["spread"][k].as_f64().unwrap(),
                num(&c[k]),
            );
        }
    }
    let actions = sql(&prefix, "select * from h2lab_action_summary");
    // Every action analyze names (its line for the loop outside actions
    // aside, which the package has as h2lab_loop_time) is a row.
    let named = a["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| !x["name"].as_str().unwrap().starts_with('('))
        .count();
    assert_eq!(actions.len(), named, "{name}: {actions:?}");
    for x in actions {
        let ours = a["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|y| y["name"] == x["name"].as_str())
            .unwrap_or_else(|| panic!("{name}: action {}", x["name"]));
        for k in [
            "count",
            "total_ns",
            "self_ns",
            "share_of_busy",
            "octets_per_call",
        ] {
            agree(
                &format!("{name} {} {k}", x["name"]),
                ours[k].as_f64().unwrap(),
                num(&x[k]),
            );
        }
    }
    let loop_time = sql(&prefix, "select * from h2lab_loop_time");
    match a["loop_time"].is_null() {
        true => assert!(loop_time.is_empty(), "{name}: {loop_time:?}"),
        false => {
            for k in ["wall_ns", "busy_ns", "idle_ns", "descheduled_ns"] {
                agree(
                    &format!("{name} loop {k}"),
                    a["loop_time"][k].as_f64().unwrap(),
                    num(&loop_time[0][k]),
                );
            }
        }
    }
    let clients = sql(&prefix, "select * from h2lab_client_summary");
    assert_eq!(clients.len(), 3, "{name}: {clients:?}");
    for c in clients {
        let ours = a["per_client"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["client"].as_f64() == Some(num(&c["client"])))
            .unwrap();
        agree(
            &format!("{name} client requests"),
            ours["requests"].as_f64().unwrap(),
            num(&c["requests"]),
        );
        for k in ["p50_ns", "p99_ns", "max_ns"] {
            agree(
                &format!("{name} client {k}"),
                ours["latency"][k].as_f64().unwrap(),
                num(&c[k]),
            );
        }
    }
}

#[test]
fn poll_mini_rustls_analysed_and_agreed_on_by_sql() {
    check(
        "poll-mini-rustls",
        &["--dispatch", "poll", "--tls", "rustls"],
    );
}

#[test]
fn tokio_mini_none_analysed_and_agreed_on_by_sql() {
    check("tokio-mini-none", &["--dispatch", "tokio"]);
}

#[test]
fn thread_h2_openssl_analysed_and_agreed_on_by_sql() {
    check(
        "thread-h2-openssl",
        &["--dispatch", "thread", "--engine", "h2", "--tls", "openssl"],
    );
}

/// The table and the markdown put two traces side by side, each named,
/// with every section, and say first what a trace cannot tell.
#[test]
fn two_traces_side_by_side_in_the_table_and_the_markdown() {
    let poll = traced("side-poll", &["--dispatch", "poll"], 100);
    let tokio = traced("side-tokio", &["--dispatch", "tokio"], 100);
    let table = stdout(&analyze(&[poll.as_os_str(), tokio.as_os_str()]));
    let first = table.lines().next().unwrap();
    assert!(
        first.starts_with("note: [2]") && first.contains("records no waits"),
        "{table}"
    );
    for want in [
        "[1] ",
        "[2] ",
        "poll/mini/none",
        "tokio/mini/none",
        "latency per request",
        "where it went",
        "the loop's time",
        "per action",
        "write_socket",
        "not recorded",
        "fairness",
    ] {
        assert!(table.contains(want), "{want:?} missing:\n{table}");
    }
    let md = stdout(&analyze(&[
        poll.as_os_str(),
        tokio.as_os_str(),
        OsStr::new("--markdown"),
    ]));
    assert!(md.starts_with("# h2lab analyze"), "{md}");
    assert!(md.contains("|---|---|---|"), "{md}");
    assert!(md.contains("* [2] "), "{md}");
}

/// A trace that lost records is refused (exit 2, with the reason and the
/// way out); with --allow-losses it is analysed and says so first.
#[test]
fn a_lossy_trace_is_refused_without_allow_losses() {
    let prefix = dir().join("lossy");
    lossy_trace(prefix.clone(), 400);
    let out = analyze(&[prefix.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("lost records") && err.contains("--allow-losses"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let text = stdout(&analyze(&[
        prefix.as_os_str(),
        OsStr::new("--allow-losses"),
    ]));
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("the trace lost records"),
        "{text}"
    );
}

/// What is not a trace gets a clear error and exit 2.
#[test]
fn what_is_not_a_trace_is_refused() {
    let missing = dir().join("no-such-trace");
    let out = analyze(&[missing.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-trace.csv"), "{err}");
    let other = dir().join("other.csv");
    std::fs::write(&other, "a,b\n1,2\n").unwrap();
    let out = analyze(&[other.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not an h2lab action log"), "{err}");
    let out = analyze(&[]);
    assert_eq!(out.status.code(), Some(2));
    // A hand-edited log with absurd times is analysed, not a panic.
    let odd = dir().join("odd.csv");
    std::fs::write(
        &odd,
        format!(
            "{}\n18446744073709551615,18446744073709551615,1,action,engine,,0,\n\
             5,0,1,frame-in,HEADERS,1,19,END_STREAM|END_HEADERS\n\
             18446744073709551615,0,1,frame-out,DATA,1,12,END_STREAM\n\
             0,18446744073709551615,0,loop,poll_wait,,0,runq_ns=7\n",
            h2lab::trace::CSV_HEADER
        ),
    )
    .unwrap();
    let out = analyze(&[odd.as_os_str(), OsStr::new("--json")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
