//! `h2lab bench` on a tiny matrix with both load clients: every cell has
//! rows with successes, no failures and a server CPU time; nothing it
//! started is left running.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use h2lab::bench::row::{Row, RowKind, CSV_HEADER};
use h2lab::bench::LoadClient;
use support::run;

/// The tests here check that no process a bench started outlives it, by
/// looking at every process: they must not run at the same time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `h2lab bench` with `flags` (split on white space, as a shell would
/// split them) and then `values`, which may hold anything (file paths).
/// Unless `flags` ask for a `--precision`, exactly `--repeat` runs a cell
/// and no counting run (`--precision 0 --no-count`), so that the tests
/// know how many runs to find.
fn bench_command(flags: &str, values: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_h2lab"));
    cmd.arg("bench").args(flags.split_whitespace()).args(values);
    if !flags.contains("--precision") {
        cmd.args(["--precision", "0", "--no-count"]);
    }
    cmd
}

/// [`bench_command`], run to its end (within the helpers' limit).
fn bench(flags: &str, values: &[&str]) -> Output {
    run(&mut bench_command(flags, values))
}

/// The rows of a bench CSV, read as `h2lab report` reads them.
fn rows(path: &Path) -> Vec<Row> {
    h2lab::csv_file::read(path, CSV_HEADER, "a bench CSV").unwrap()
}

/// The command lines (arguments joined by spaces) of the processes alive now.
fn command_lines() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            Some(String::from_utf8_lossy(&cmdline).replace('\0', " "))
        })
        .collect()
}

/// `h2lab serve --port 0` processes alive now (only bench starts them so).
fn bench_servers() -> usize {
    command_lines()
        .iter()
        .filter(|c| c.contains(" serve --port 0 "))
        .count()
}

/// The table's header and cells, without its footer lines (`! …` says
/// how many cells are not to be trusted, `w …` how many are mostly
/// wake-ups, `cs/r: …` and `pkts/r: …` what the counts' columns mean,
/// `~ …` what the
/// machine's pace did).
fn table_lines(table: &str) -> usize {
    table
        .lines()
        .filter(|l| {
            !["! ", "w ", "cs/r: ", "pkts/r: ", "~ "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .count()
}

#[test]
fn tiny_matrix_with_both_clients() {
    let _serial = serial();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    for client in ["builtin", "h2load"] {
        let csv = dir.join(format!("{client}.csv"));
        let json = dir.join(format!("{client}.json"));
        let out = bench(
            "--dispatch poll,thread --engine mini,h2 --tls none,rustls \
             --clients 2 --pipeline 10 --duration 0.3 --warm-up 0.1 --repeat 2",
            &[
                "--client",
                client,
                "--out",
                csv.to_str().unwrap(),
                "--json",
                json.to_str().unwrap(),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{client}: {err}");
        assert!(
            err.contains("skipping poll/h2/none: not a supported setup"),
            "{err}"
        );
        let table = String::from_utf8_lossy(&out.stdout);
        // Footer lines say when repeats spread too wide (`! …`) and what
        // the machine's own pace did (`~ …`).
        assert_eq!(
            table_lines(&table),
            1 + 6,
            "{client}: header + 6 cells: {table}"
        );
        assert!(
            table.contains("\n~ the machine's own pace") && table.contains("around the repeats of"),
            "{table}"
        );

        let rows = rows(&csv);
        let runs: Vec<&Row> = rows.iter().filter(|r| r.kind == RowKind::Run).collect();
        let medians: Vec<&Row> = rows.iter().filter(|r| r.kind == RowKind::Median).collect();
        assert_eq!(
            (runs.len(), medians.len()),
            (12, 6),
            "{client}: 6 cells × 2 repeats"
        );
        let load_client = match client {
            "builtin" => LoadClient::Builtin,
            _ => LoadClient::H2load,
        };
        for r in runs.iter().chain(medians.iter()) {
            assert_eq!(r.client, load_client);
            assert!(
                r.succeeded > 0 && r.failed == 0 && r.cpu_us_per_req > 0.0,
                "{client}: {r:?}"
            );
            assert_eq!(r.connection_errors, 0, "{client}: connection errors: {r:?}");
            if client == "builtin" {
                assert!(r.p50_us.unwrap() > 0, "p50: {r:?}");
            }
            // The machine's pace, timed around every run (ns a block).
            assert!(r.pace_ns.is_some_and(|p| p > 100.0), "pace: {r:?}");
        }
        for m in &medians {
            let (min, max) = (m.pace_ns_min.unwrap(), m.pace_ns_max.unwrap());
            assert!(
                min <= m.pace_ns.unwrap() && m.pace_ns.unwrap() <= max,
                "{m:?}"
            );
        }
        // Repeats are interleaved: cell 1 rep 1 … cell 6 rep 1, then rep 2.
        let reps: Vec<usize> = runs.iter().map(|r| r.rep.unwrap()).collect();
        assert_eq!(reps, [vec![1; 6], vec![2; 6]].concat());
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(doc["runs"].as_array().unwrap().len(), 12);
        assert_eq!(doc["medians"].as_array().unwrap().len(), 6);
        assert_eq!(
            bench_servers(),
            0,
            "{client}: a server child outlived the bench"
        );
    }
}

/// `single` with two clients starves the second: the bench records it the
/// same with and without TLS (h2c writes its requests blind, TLS cannot get
/// past its handshake): one connection error, and its requests in flight
/// (2 here) failed.
#[test]
fn a_starved_client_is_recorded_alike_with_and_without_tls() {
    let _serial = serial();
    let out = bench(
        "--dispatch single --tls none,rustls --clients 2 --pipeline 2 \
         --duration 0.3 --warm-up 0.1 --repeat 1 --timeout 0.5",
        &[],
    );
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    for tls in ["none", "rustls"] {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("single/mini/{tls} ")))
            .unwrap_or_else(|| panic!("{table}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        // ... failed, conn err, then the network's two columns.
        let n = cols.len();
        assert_eq!(cols[n - 4..n - 2], ["2", "1"], "{tls}: {table}");
    }
}

/// Pinned runs: servers (ours and a peer) on CPU 0, the load on CPU 1.
#[test]
fn pinned_runs_serve_and_report_their_cpus() {
    let _serial = serial();
    for client in ["builtin", "h2load"] {
        let out = bench(
            "--dispatch poll --tls none --peers h2o --require-peers --clients 1 \
             --pipeline 10 --duration 0.2 --repeat 1 --pin-server 0 \
             --pin-client 1",
            &["--client", client],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{client}: {err}");
        assert!(err.contains("servers on CPUs 0, load on CPUs 1"), "{err}");
        let table = String::from_utf8_lossy(&out.stdout);
        assert_eq!(table_lines(&table), 3, "{table}");
    }
    let out = bench("--pin-server zero", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a CPU list"));
}

#[test]
fn report_of_a_bad_file_is_a_clear_error() {
    let _serial = serial();
    let bad = Path::new(env!("CARGO_TARGET_TMPDIR")).join("not-a-bench.csv");
    std::fs::write(&bad, "a,b\n").unwrap();
    let out = run(Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .arg("report")
        .arg(&bad));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an h2lab bench CSV"));
}

/// `--work` is an axis of our servers: each cell with `cpu:1ms` costs the
/// server at least that much CPU per request (less the clock ticks'
/// rounding), the CSV and the table name the work, and a peer, which
/// serves a file, runs once without it. At 10 in flight, not 1: a cell
/// without work then costs tens of µs per request, not the 60–900 µs of
/// a wake-up per request on this VM (one such cell once measured over
/// 900 µs in a full run of the suite).
#[test]
fn the_work_axis_reaches_our_servers_and_not_the_peers() {
    let _serial = serial();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("work.csv");
    let out = bench(
        "--dispatch poll,tokio --engine mini,h2 --tls none --peers h2o --require-peers \
         --clients 1 --pipeline 10 --work none,cpu:1ms --duration 0.3 --warm-up 0.1 --repeat 1",
        &["--out", csv.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let table = String::from_utf8_lossy(&out.stdout);
    let medians: Vec<Row> = rows(&csv)
        .into_iter()
        .filter(|r| r.kind == RowKind::Median)
        .collect();
    // poll/mini, tokio/mini, tokio/h2, each without and with work; h2o once.
    assert_eq!(medians.len(), 7, "{table}");
    for m in &medians {
        let label = format!("{}/{}/{}", m.dispatch, m.engine, m.tls);
        match m.work.as_deref() {
            Some("cpu:1ms") => {
                assert_ne!(m.engine, "peer", "{table}");
                assert!(m.cpu_us_per_req >= 900.0, "{label}: {m:?}");
                assert!(table.contains(&format!("{label} cpu:1ms ")), "{table}");
            }
            None => assert!(m.cpu_us_per_req < 900.0, "{label}: {m:?}"),
            other => panic!("{label}: work {other:?}"),
        }
    }
    assert_eq!(medians.iter().filter(|m| m.engine == "peer").count(), 1);
}

/// `--source reading,blind,file` on the mini engine (blind is the mini
/// engine's: h2 runs reading and file only) beside h2o: every row says
/// what each response carried, read from the wire, and the file reads per
/// request from the counting run: the file source and h2o read the file
/// once per request, the others never.
#[test]
fn the_source_axis_states_the_work_per_request() {
    let _serial = serial();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("source.csv");
    let out = bench(
        "--dispatch poll,tokio --engine mini,h2 --tls none --peers h2o --require-peers \
         --clients 1 --pipeline 10 --source reading,blind,file --duration 0.3 --warm-up 0.1 \
         --repeat 1 --precision 0",
        &["--out", csv.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let table = String::from_utf8_lossy(&out.stdout);
    let medians: Vec<Row> = rows(&csv)
        .into_iter()
        .filter(|r| r.kind == RowKind::Median)
        .collect();
    // poll/mini ×3, tokio/mini ×3, tokio/h2 ×2, h2o.
    assert_eq!(medians.len(), 9, "{table}");
    for m in &medians {
        let label = format!("{}/{}/{} {:?}", m.dispatch, m.engine, m.tls, m.source);
        let reads = m
            .file_reads_per_req
            .unwrap_or_else(|| panic!("{label}: no count"));
        let dated = m.head_dated.unwrap_or_else(|| panic!("{label}: no probe"));
        let fields = m.head_fields.unwrap();
        match (m.engine.as_str(), m.source.as_deref()) {
            ("mini", Some("blind")) => {
                assert_eq!(
                    (fields, dated, m.head_octets),
                    (2.0, 0.0, Some(11.0)),
                    "{label}"
                );
                assert!(reads < 0.01, "{label}: {reads}");
            }
            ("peer", None) => {
                assert!(fields >= 4.0 && dated == 1.0, "{label}: {m:?}");
                assert!((0.95..1.2).contains(&reads), "{label}: {reads}");
            }
            (_, Some("file")) => {
                assert_eq!((fields, dated), (4.0, 1.0), "{label}");
                assert!((0.95..1.2).contains(&reads), "{label}: {reads}");
            }
            (_, None) => {
                assert_eq!((fields, dated), (4.0, 1.0), "{label}");
                assert!(reads < 0.01, "{label}: {reads}");
            }
            other => panic!("{label}: {other:?}"),
        }
        assert_eq!(m.body_octets, Some(12.0), "{label}");
    }
    assert!(table.contains("poll/mini/none blind"), "{table}");
    assert!(table.contains("poll/mini/none file"), "{table}");
}

/// `--mix` is an axis of our servers: `/` alone, and a mix whose
/// `/bytes/100` answers are checked against their route, with both load
/// clients; every request succeeds and the rows carry the mix.
#[test]
fn the_mix_axis_reaches_both_clients() {
    let _serial = serial();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    for client in ["builtin", "h2load"] {
        let csv = dir.join(format!("mix-{client}.csv"));
        let out = bench(
            &format!(
                "--dispatch poll --tls none --clients 1 --pipeline 10 --mix /,/@3+/bytes/100@1 \
                 --client {client} --duration 0.3 --warm-up 0.1 --repeat 1"
            ),
            &["--out", csv.to_str().unwrap()],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{client}: {err}");
        let table = String::from_utf8_lossy(&out.stdout);
        let medians: Vec<Row> = rows(&csv)
            .into_iter()
            .filter(|r| r.kind == RowKind::Median)
            .collect();
        let mixes: Vec<Option<&str>> = medians.iter().map(|m| m.mix.as_deref()).collect();
        assert_eq!(
            mixes,
            [Some("/"), Some("/@3+/bytes/100@1")],
            "{client}: {table}"
        );
        for m in &medians {
            assert!(m.succeeded > 0 && m.failed == 0, "{client}: {m:?}");
        }
        assert!(
            table.contains("poll/mini/none mix=/@3+/bytes/100@1"),
            "{table}"
        );
        // The mix's answers are larger: more DATA per response.
        assert!(
            medians[1].goodput_mib_per_s > medians[0].goodput_mib_per_s,
            "{client}: {table}"
        );
    }
    let err =
        String::from_utf8_lossy(&bench("--dispatch poll --tls none --mix nopath", &[]).stderr)
            .to_string();
    assert!(err.contains("is not PATH or PATH@WEIGHT"), "{err}");
}

#[test]
fn an_empty_matrix_is_an_error() {
    let _serial = serial();
    let out = bench("--dispatch poll --engine h2", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no supported setup in the matrix"));
}

/// Processes started from a peer's temporary folder, alive now.
fn peer_processes() -> Vec<String> {
    command_lines()
        .into_iter()
        .filter(|c| c.contains("h2lab-peer-"))
        .collect()
}

/// nginx, h2o and nghttpd are started with generated configurations,
/// measured like our servers, and stopped: nothing they ran is left.
#[test]
fn peers_are_started_measured_and_stopped() {
    let _serial = serial();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("peers.csv");
    let out = bench(
        "--dispatch poll --tls none,rustls --peers nginx,h2o,nghttpd \
         --require-peers --clients 2 --pipeline 10 --duration 0.3 \
         --repeat 1",
        &["--out", csv.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let rows = rows(&csv);
    for peer in ["nginx", "h2o", "nghttpd"] {
        for tls in ["none", "openssl"] {
            let r = rows
                .iter()
                .find(|r| {
                    r.kind == RowKind::Run
                        && r.dispatch == peer
                        && r.engine == "peer"
                        && r.tls == tls
                })
                .unwrap_or_else(|| panic!("no {peer}/{tls} row: {rows:?}"));
            assert!(
                r.succeeded > 0 && r.failed == 0 && r.cpu_us_per_req > 0.0,
                "{peer}/{tls}: {r:?}"
            );
        }
    }
    assert_eq!(
        peer_processes(),
        Vec::<String>::new(),
        "peer processes left running"
    );

    // The report: ratios to the fastest peer by default, or to a baseline.
    let report = |extra: &[&str]| {
        run(Command::new(env!("CARGO_BIN_EXE_h2lab"))
            .arg("report")
            .arg(&csv)
            .args(extra))
    };
    let out = report(&[]);
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        md.contains("## 2 clients, 10 in flight, h2c")
            && md.contains("## 2 clients, 10 in flight, TLS"),
        "{md}"
    );
    let baseline = md.split("**").nth(1).expect("a baseline").to_string();
    assert!(
        baseline.ends_with("/peer"),
        "the fastest peer by default: {md}"
    );
    assert!(
        md.contains(&format!("| {baseline}/none | ")) && md.contains(" | 1.00 | "),
        "{md}"
    );
    assert!(md.contains("- nginx: nginx version: nginx/"), "{md}");
    let out = report(&["--baseline", "poll/mini"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("| poll/mini/none | "));
    let out = report(&["--baseline", "iis/peer"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("baseline \"iis/peer\" is not in the results"));
    let leftovers = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("h2lab-peer-"))
        .count();
    assert_eq!(leftovers, 0, "a peer's temporary folder was left behind");
}

/// `--threads 2`: tokio gets 2 workers, poll 2 reactors and every peer 2
/// workers (nginx worker_processes, h2o num-threads, nghttpd -n), each cell
/// recorded with its threads; single runs once, as it is.
#[test]
fn the_threads_axis_reaches_every_server() {
    let _serial = serial();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("threads.csv");
    let out = bench(
        "--dispatch single,tokio,poll --tls none --peers nginx,h2o,nghttpd \
         --require-peers --threads 2 --clients 4 --pipeline 10 \
         --duration 0.3 --repeat 1 --client h2load",
        &["--out", csv.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("nginx/peer/none ×2"), "{text}");
    let runs: Vec<Row> = rows(&csv)
        .into_iter()
        .filter(|r| r.kind == RowKind::Run)
        .collect();
    let mut seen: Vec<(String, Option<usize>)> = runs
        .iter()
        .map(|r| (r.dispatch.clone(), r.threads))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("h2o".into(), Some(2)),
            ("nghttpd".into(), Some(2)),
            ("nginx".into(), Some(2)),
            ("poll".into(), Some(2)),
            ("single".into(), None),
            ("tokio".into(), Some(2)),
        ]
    );
    for r in &runs {
        assert!(r.succeeded > 0 && r.failed == 0, "{r:?}");
    }
    assert_eq!(peer_processes(), Vec::<String>::new());
}

/// The machine block: the CSV's `# key: value` lines and the JSON's
/// `machine`, and `report` describes the machine the bench ran on.
#[test]
fn results_carry_the_machine_that_ran_them() {
    let _serial = serial();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-machine");
    std::fs::create_dir_all(&dir).unwrap();
    let (csv, json) = (dir.join("m.csv"), dir.join("m.json"));
    let out = bench(
        "--dispatch poll --tls none --clients 1 --pipeline 1 --duration 0.2 \
         --warm-up 0.2 --repeat 1",
        &[
            "--out",
            csv.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    for key in [
        "date", "h2lab", "cpu", "kernel", "pinning", "warm_up", "duration", "pace",
    ] {
        assert!(text.contains(&format!("# {key}: ")), "{key}: {text}");
    }
    assert!(text.contains("# warm_up: 0.2 s"), "{text}");
    assert!(text.contains("(commit "), "{text}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["machine"]["repeat"], "1", "{doc}");
    let report = run(Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .arg("report")
        .arg(&csv));
    let md = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "{md}");
    assert!(md.contains("## Machine (where the bench ran)"), "{md}");
    assert!(md.contains("- warm-up: 0.2 s"), "{md}");
    assert!(md.contains("- pace: 0.1 s on CPUs "), "{md}");
    assert!(md.contains("The machine: the machine's own pace"), "{md}");

    // `--pace 0`: not timed, said so, and no pace in the rows or footer.
    let out = bench(
        "--dispatch poll --tls none --pace 0 --clients 1 --pipeline 1 \
         --duration 0.2 --warm-up 0.2 --repeat 1",
        &["--out", csv.to_str().unwrap()],
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !table.contains("pace"), "{table}");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.contains("# pace: not timed\n"), "{text}");
    assert!(rows(&csv).iter().all(|r| r.pace_ns.is_none()), "{text}");
}

/// An output that cannot be written is refused before the first run.
#[test]
fn an_unwritable_output_is_refused_up_front() {
    let _serial = serial();
    let started = std::time::Instant::now();
    let out = bench(
        "--dispatch poll --tls none --out /nonexistent-dir/results.csv",
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot write /nonexistent-dir/results.csv"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "no run started"
    );
}

/// SIGINT mid-run: the bench stops at once, with its servers and peers,
/// removes their folders, and keeps the runs it finished in both files.
#[test]
fn an_interrupted_bench_keeps_its_runs_and_leaves_nothing() {
    let _serial = serial();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-interrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let (csv, json) = (dir.join("i.csv"), dir.join("i.json"));
    // Not an earlier run's rows.
    let _ = std::fs::remove_file(&csv);
    let _ = std::fs::remove_file(&json);
    let bench = bench_command(
        "--dispatch poll --tls none --peers nginx --require-peers \
         --clients 1 --pipeline 10 --duration 0.3 --warm-up 0.1 --repeat 50",
        &[
            "--out",
            csv.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let pid = bench.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let run_rows = || {
        std::fs::read_to_string(&csv)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("run,"))
            .count()
    };
    while run_rows() < 3 {
        assert!(std::time::Instant::now() < deadline, "no runs written");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Its children lead process groups of their own (nginx's workers in
    // its master's): every process in them must be gone after.
    let mut groups: Vec<u32> = Vec::new();
    while groups.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the bench runs no server"
        );
        groups = stats().filter(|s| s.1 == pid).map(|s| s.0).collect();
    }
    let owned = || -> Vec<u32> {
        stats()
            .filter(|s| groups.contains(&s.2))
            .map(|s| s.0)
            .collect()
    };
    let signalled = std::time::Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = bench.wait_with_output().unwrap();
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        signalled.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("interrupted after"), "{err}");
    let rows = rows(&csv);
    assert!(rows.iter().filter(|r| r.kind == RowKind::Run).count() >= 3);
    assert!(rows.iter().any(|r| r.kind == RowKind::Median));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(doc["runs"].as_array().unwrap().len() >= 3);
    // A process killed a moment ago may still be on its way out.
    let gone_by = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !owned().is_empty() && std::time::Instant::now() < gone_by {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(owned(), Vec::<u32>::new(), "processes outlived the bench");
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("h2lab-peer-{pid}-"))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// (pid, parent, process group) of every process alive now (zombies,
/// dead but not yet reaped, are not).
fn stats() -> impl Iterator<Item = (u32, u32, u32)> {
    std::fs::read_dir("/proc").unwrap().filter_map(|e| {
        let e = e.ok()?;
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // After the name: state, ppid, pgrp.
        if matches!(*rest.first()?, "Z" | "X") {
            return None;
        }
        Some((pid, rest.get(1)?.parse().ok()?, rest.get(2)?.parse().ok()?))
    })
}

/// `--precision`: a cell whose interval never gets that narrow runs again
/// until `--max-repeat`, and the table says it never settled. Then each
/// cell's counting run: perf's system calls per request in its own row
/// and in the cell's median, beside the context switches of every run.
/// The machine block says what the machine adds.
#[test]
fn unsettled_cells_run_again_and_every_cell_is_counted() {
    let _serial = serial();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-precision");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("p.csv");
    let out = bench(
        "--dispatch poll,thread --tls none --clients 1 --pipeline 1,10 --duration 0.2 \
         --warm-up 0.1 --repeat 2 --precision 0.0001 --max-repeat 3",
        &["--out", csv.to_str().unwrap()],
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = rows(&csv);
    let of = |kind: RowKind| rows.iter().filter(move |r| r.kind == kind);
    // ±0.0001% is never reached: 4 cells × 3 runs, each counted once.
    assert_eq!(of(RowKind::Run).count(), 12, "{table}");
    assert_eq!(of(RowKind::Count).count(), 4, "{table}");
    assert!(
        table.contains("! 4 of 4 cells: their 95% interval"),
        "{table}"
    );
    for m in of(RowKind::Median) {
        assert_eq!(m.settled, Some(false), "{m:?}");
        let (low, high) = (m.cpu_ci_low.unwrap(), m.cpu_ci_high.unwrap());
        assert!(
            low <= m.cpu_us_per_req * 1.5 && high >= m.cpu_us_per_req / 1.5,
            "{m:?}"
        );
        assert!(
            m.req_per_s_ci_low.unwrap() < m.req_per_s_ci_high.unwrap(),
            "{m:?}"
        );
        // One request per read at most, a write per response or fewer
        // (10 in flight: answers go out together), and every figure
        // there.
        let sys = m.syscalls_per_req.unwrap();
        let (reads, writes) = (m.reads_per_req.unwrap(), m.writes_per_req.unwrap());
        assert!(
            sys >= reads + writes && writes > 0.0 && writes <= 1.1,
            "{m:?}"
        );
        assert!(m.octets_per_write.unwrap() >= 20.0, "{m:?}");
        assert!(m.requests_per_read.unwrap() > 0.0, "{m:?}");
        assert!(m.ctx_switches_per_req.is_some(), "{m:?}");
        if m.pipeline == 1 {
            // One request at a time: the server sleeps between them.
            assert!(m.ctx_switches_per_req.unwrap() > 0.5, "{m:?}");
            assert!((0.9..=1.1).contains(&writes), "{m:?}");
        }
    }
    for r in of(RowKind::Run) {
        assert!(
            r.ctx_switches_per_req.is_some() && r.syscalls_per_req.is_none(),
            "{r:?}"
        );
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    for key in [
        "virtualization",
        "cpuidle",
        "wake_up",
        "syscalls",
        "precision",
    ] {
        assert!(text.contains(&format!("\n# {key}: ")), "{key}: {text}");
    }
    assert!(text.contains("# wake_up: median "), "{text}");
    assert!(text.contains("# syscalls: counted by perf"), "{text}");
}

/// Reads a bench CSV's lines, changes them, writes them to `to`.
fn edited(from: &Path, to: &Path, edit: impl Fn(&str) -> Option<String>) {
    let text = std::fs::read_to_string(from).unwrap();
    let lines: Vec<String> = text.lines().filter_map(&edit).collect();
    std::fs::write(to, lines.join("\n") + "\n").unwrap();
}

/// `bench-compare` against a copy of a real bench in which one cell's
/// runs cost 3× the CPU, another cell is gone and the kernel differs:
/// that cell alone is marked worse (exit 1), the missing one is listed,
/// the machine's difference is warned of; a bench against itself marks
/// nothing (exit 0).
#[test]
fn bench_compare_finds_the_one_cell_that_changed() {
    let _serial = serial();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-compare");
    std::fs::create_dir_all(&dir).unwrap();
    let (old, new) = (dir.join("old.csv"), dir.join("new.csv"));
    let out = bench(
        "--dispatch poll --tls none --clients 1,2 --pipeline 1,10 --duration 0.2 \
         --warm-up 0.1 --repeat 3",
        &["--out", old.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header: Vec<&str> = CSV_HEADER.split(',').collect();
    let cpu = header.iter().position(|&h| h == "cpu_us_per_req").unwrap();
    // The cell to change: of those that stay, the one whose 3 runs spread
    // least. On this VM a slow spell can make one repeat of every cell
    // several times dearer (6.8, 6.7 and 62.7 µs/request at 1 × 10 once),
    // and a cell that spread can hide even 3× from 3 runs a side.
    let runs: Vec<Row> = rows(&old)
        .into_iter()
        .filter(|r| r.kind == RowKind::Run)
        .collect();
    let spread = |c: usize, m: usize| {
        let v: Vec<f64> = runs
            .iter()
            .filter(|r| r.clients == c && r.pipeline == m)
            .map(|r| r.cpu_us_per_req)
            .collect();
        v.iter().cloned().fold(0.0, f64::max) / v.iter().cloned().fold(f64::MAX, f64::min)
    };
    let (c1, m1) = [(1, 1), (1, 10), (2, 1)]
        .into_iter()
        .min_by(|a, b| spread(a.0, a.1).total_cmp(&spread(b.0, b.1)))
        .unwrap();
    let (c1s, m1s) = (c1.to_string(), m1.to_string());
    edited(&old, &new, |line| {
        let mut fields: Vec<String> = line.split(',').map(str::to_string).collect();
        if line.starts_with("# kernel: ") {
            return Some("# kernel: Linux 0.0.1".into());
        }
        // The steadiest cell: 3× the CPU (far outside what 3 runs a side
        // can hide: at 1.5× a noisy cell's interval reached below 1.05);
        // cell 2 × 10: gone.
        let cell = |c: &str, m: &str| {
            fields.len() > 6 && fields[1] == "builtin" && fields[5] == c && fields[6] == m
        };
        if cell("2", "10") {
            return None;
        }
        if fields[0] == "run" && cell(&c1s, &m1s) {
            let v: f64 = fields[cpu].parse().unwrap();
            fields[cpu] = format!("{:.3}", v * 3.0);
        }
        Some(fields.join(","))
    });
    let compare = |a: &Path, b: &Path, extra: &[&str]| {
        run(Command::new(env!("CARGO_BIN_EXE_h2lab"))
            .arg("bench-compare")
            .args([a, b])
            .args(extra))
    };
    let out = compare(&old, &new, &["--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cells = doc["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3, "{doc}");
    for c in cells {
        let changed = c["clients"] == c1 && c["pipeline"] == m1;
        let cpu = &c["cpu_us_per_req"];
        let ratio = cpu["ratio"]["estimate"].as_f64().unwrap();
        if changed {
            assert_eq!(cpu["mark"], "worse", "{doc}");
            assert!((ratio - 3.0).abs() < 0.02, "{doc}");
        } else {
            assert_eq!(cpu["mark"], "", "{doc}");
            assert!((ratio - 1.0).abs() < 1e-9, "{doc}");
        }
        assert_eq!(c["req_per_s"]["mark"], "", "{doc}");
    }
    assert_eq!(
        doc["only_old"],
        serde_json::json!(["poll/mini/none c=2 m=10"])
    );
    assert_eq!(doc["only_new"], serde_json::json!([]));
    assert_eq!(doc["machine_differs"][0][0], "kernel", "{doc}");
    let table = compare(&old, &new, &[]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.starts_with("WARNING: the two benches did not run alike"),
        "{text}"
    );
    assert!(text.contains("  kernel: Linux "), "{text}");
    assert!(
        text.contains("only in OLD: poll/mini/none c=2 m=10"),
        "{text}"
    );
    assert!(text.contains("1 of 3 cells worse, 0 better"), "{text}");
    let same = compare(&old, &old, &[]);
    let text = String::from_utf8_lossy(&same.stdout);
    assert_eq!(same.status.code(), Some(0), "{text}");
    assert!(
        !text.contains("WARNING") && text.contains("0 of 4 cells worse, 0 better"),
        "{text}"
    );
    // A file that is not a bench CSV: exit 2, one line.
    let bad = compare(&old, Path::new("/nonexistent.csv"), &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).trim().lines().count(),
        1
    );
}
