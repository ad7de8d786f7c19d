//! Our traces as Perfetto reads them: every setup's JSON loaded by
//! Perfetto's own trace processor (`../shared/tools/trace_processor_shell`,
//! the parser behind the Perfetto UI) and checked with SQL.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use h2lab::trace::TraceConfig;
use h2lab::{Setup, TlsProvider};
use support::{config, one_row, run, tool};

setup_tests!(perfetto_loads_the_trace_with_everything_in_place);

/// Serves `requests` with h2load (`-c clients -m 5`) on a traced server;
/// returns the JSON's path and the server's final counters.
fn traced_run(
    setup: Setup,
    name: &str,
    requests: u32,
    clients: u32,
) -> (PathBuf, h2lab::server::ServerStats) {
    let trace = TraceConfig::new(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("perfetto")
            .join(name),
    );
    let server = h2lab::start(&h2lab::ServerConfig {
        trace: Some(trace.clone()),
        ..config(setup)
    })
    .unwrap();
    let out = run(tool("h2load")
        .args([
            "-n",
            &requests.to_string(),
            "-c",
            &clients.to_string(),
            "-m",
            "5",
        ])
        .args(["-T", "10", "-N", "10"])
        .arg(server.url()));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{requests} succeeded, 0 failed")),
        "{setup}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stats = server.stop();
    (trace.json_path(), stats)
}

fn perfetto_loads_the_trace_with_everything_in_place(setup: Setup) {
    let (json, stats) = traced_run(setup, &setup.to_string().replace('/', "-"), 60, 3);
    let summary = stats.trace.clone().unwrap().unwrap();
    let row = one_row(
        &json,
        "select \
           (select count(*) from stats where severity in ('error', 'data_loss') and value > 0) as errors, \
           (select count(*) from thread where name like 'client %') as client_tracks, \
           (select count(*) from slice s join slice p on s.parent_id = p.id \
              where s.ts < p.ts or s.ts + s.dur > p.ts + p.dur) as misnested, \
           (select count(*) from slice where dur < 0) as unfinished, \
           (select str_value from metadata where name = 'json_metadata.setup') as setup, \
           (select int_value from metadata where name = 'json_metadata.dropped') as dropped, \
           (select int_value from metadata where name = 'json_metadata.records') as records, \
           (select int_value from metadata where name = 'json_metadata.complete') as complete, \
           (select count(*) from metadata where name = 'json_metadata.start_utc') as start, \
           (select count(*) from metadata where name = 'json_metadata.command_line') as command_line, \
           (select count(*) from slice where name = 'DATA out') as data_out, \
           (select count(*) from slice where name = 'HEADERS in') as headers_in, \
           (select count(*) from slice where name = 'engine') as engine, \
           (select count(*) from flow) as flows, \
           (select count(*) from counter_track where name like 'streams in flight, client %') as counters",
    );
    let n = |k: &str| -> i64 {
        row[k]
            .parse()
            .unwrap_or_else(|_| panic!("{setup}: {k} = {:?}", row[k]))
    };
    assert_eq!(n("errors"), 0, "{setup}: Perfetto reported errors: {row:?}");
    assert_eq!(
        n("client_tracks"),
        3,
        "{setup}: one track per client: {row:?}"
    );
    assert_eq!(n("misnested"), 0, "{setup}: slices nest: {row:?}");
    assert_eq!(n("unfinished"), 0, "{setup}");
    assert_eq!(row["setup"], setup.to_string());
    assert_eq!(
        n("dropped"),
        summary.dropped as i64,
        "{setup}: the server's drop count"
    );
    assert_eq!(n("records"), summary.written as i64, "{setup}");
    assert_eq!(n("complete"), 1, "{setup}");
    assert_eq!((n("start"), n("command_line")), (1, 1), "{setup}: {row:?}");
    assert_eq!(
        n("data_out") as u64,
        stats.responses,
        "{setup}: a DATA out per response"
    );
    assert_eq!(n("headers_in"), 60, "{setup}");
    assert!(
        n("engine") > 0,
        "{setup}: engine slices with the h2 engine too"
    );
    assert_eq!(
        n("flows"),
        60,
        "{setup}: one flow per request, HEADERS to its write"
    );
    assert_eq!(
        n("counters"),
        3,
        "{setup}: a streams-in-flight track per client"
    );
    if setup.tls == TlsProvider::None {
        let copies = one_row(
            &json,
            "select count(*) as n from slice where name in ('decrypt', 'encrypt', 'move_encrypted')",
        );
        assert_eq!(copies["n"], "0", "{setup}: no TLS steps without TLS");
    }
}

/// A server killed with SIGKILL leaves traces Perfetto loads: with
/// `--trace-live` the JSON as it was written (the array form, which loads
/// however it is cut); in the default mode the spool, once `h2lab
/// trace-convert` has formatted it, marked incomplete, holding at least
/// every batch the writer had taken before the kill (its header says how
/// many it held; read just before the kill): from the spool's shared
/// mapping, which the kernel keeps, and with `--trace-memory 0` from what
/// was appended past it. What the serving threads still held in their
/// batches is lost either way.
#[test]
fn a_killed_server_leaves_traces_perfetto_loads() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("perfetto");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, extra) in [
        ("killed-live", &["--trace-live"][..]),
        ("killed-mapped", &[][..]),
        ("killed-spooled", &["--trace-memory", "0"][..]),
    ] {
        let prefix = dir.join(name);
        let trace = TraceConfig::new(&prefix);
        let mut args = vec!["--dispatch", "poll", "--tls", "rustls", "--trace"];
        args.push(prefix.to_str().unwrap());
        args.extend_from_slice(extra);
        let s = support::serve(&args);
        let out = run(tool("h2load")
            .args(["-n", "3000", "-c", "3", "-m", "10"])
            .arg(&s.url));
        assert!(String::from_utf8_lossy(&out.stdout).contains("3000 succeeded"));
        // The writer works behind the server: kill it once something is on
        // disk (a busy machine, or a debug build, delays the writer).
        let written = || match name {
            "killed-live" => std::fs::read_to_string(trace.csv_path())
                .is_ok_and(|csv| csv.contains(",frame-out,DATA,")),
            _ => spooled(&trace.spool_path()) > 0,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !written() {
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: nothing written"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let taken = spooled(&trace.spool_path());
        let out = s.stop_with("KILL");
        assert!(!out.status.success(), "{name}: killed");
        let analyze = |extra: &[&str]| {
            run(Command::new(env!("CARGO_BIN_EXE_h2lab"))
                .arg("analyze")
                .arg(&prefix)
                .args(extra))
        };
        if name == "killed-mapped" {
            // Not yet: the spool says the server did not stop cleanly.
            let out = analyze(&[]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert!(err.contains("h2lab trace-convert"), "{err}");
        }
        if name != "killed-live" {
            let out = run(Command::new(env!("CARGO_BIN_EXE_h2lab"))
                .arg("trace-convert")
                .arg(&prefix));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{err}");
            assert!(err.contains("marked incomplete"), "{err}");
            assert!(!trace.spool_path().exists(), "the spool is removed");
        }
        let row = one_row(
            &trace.json_path(),
            "select (select count(*) from slice where name = 'DATA out') as responses, \
                    (select count(*) from stats where severity = 'error' and value > 0) as errors",
        );
        let responses: u64 = row["responses"].parse().unwrap();
        // What the writer had flushed when the server died.
        assert!(responses > 0 && responses <= 3000, "{name}: {row:?}");
        assert_eq!(row["errors"], "0", "{name}: {row:?}");
        if name != "killed-live" {
            let meta = h2lab::trace::TraceMeta::read(&trace.meta_path()).unwrap();
            assert!(!meta.complete, "{name}: marked incomplete");
            assert!(
                meta.records >= taken,
                "{name}: {} records recovered, {taken} taken before the kill",
                meta.records
            );
        }
        if name == "killed-mapped" {
            // Recovered, it is analysed for what it holds, and says so.
            assert_eq!(analyze(&[]).status.code(), Some(2), "incomplete");
            let out = analyze(&["--allow-losses"]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.starts_with("note: [1]") && text.contains("lost records"),
                "{text}"
            );
        }
        // The CSV is readable as it is, up to its last whole line.
        let rows = std::fs::read_to_string(trace.csv_path()).unwrap();
        assert!(rows.lines().count() > 1, "{name}");
    }
}

/// Records a running server's spool holds: those its header counts in the
/// shared mapping, and those appended past its room (the format of
/// `src/trace/writer/spool.rs`).
fn spooled(path: &Path) -> u64 {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else {
        return 0;
    };
    let mut head = [0u8; 32];
    if file.read_exact(&mut head).is_err() {
        return 0;
    }
    assert_eq!(&head[0..8], b"H2LSPOOL", "{}", path.display());
    let at = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().unwrap());
    let (room, held) = (at(8), at(16));
    let len = file.metadata().unwrap().len();
    let appended = (len - 32).saturating_sub(room * 32) / 32;
    held + appended
}
