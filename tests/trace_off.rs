//! Tracing compiled in but switched off stays off: a server without
//! `--trace` records nothing, in any thread. Its own test binary, so that
//! no traced server runs in the same process.

mod support;

use h2lab::{Dispatch, Engine, Setup, TlsProvider};
use support::{run, tool};

#[test]
fn an_untraced_server_sets_up_no_recording() {
    for dispatch in [Dispatch::Poll, Dispatch::Tokio, Dispatch::Thread] {
        for engine in [Engine::Mini, Engine::H2] {
            let setup = Setup {
                dispatch,
                engine,
                tls: TlsProvider::Rustls,
            };
            if !setup.is_supported() {
                continue;
            }
            let server = support::start(setup);
            let out = run(tool("h2load")
                .args(["-n", "2000", "-c", "2", "-m", "10"])
                .arg(server.url()));
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("2000 succeeded"),
                "{setup}"
            );
            let stats = server.stop();
            assert_eq!(stats.responses, 2000, "{setup}");
            assert!(stats.trace.is_none());
        }
    }
    // The measurement of a record's cost runs only when a trace starts.
    assert_eq!(h2lab::trace::recording_threads(), 0);
}
