//! Many clients at once: `h2load -n 20000 -c 50 -m 10` against the
//! event-loop dispatches. Every request must succeed.

mod support;

use h2lab::{Dispatch, Engine, Setup, TlsProvider};
use support::{run, start, tool};

fn fifty_clients_20000_requests(setup: Setup) {
    let server = start(setup);
    let out = run(tool("h2load")
        .args([
            "-n", "20000", "-c", "50", "-m", "10", "-T", "20", "-N", "20",
        ])
        .arg(server.url()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{setup}: {text}");
    assert!(
        text.contains("requests: 20000 total, 20000 started, 20000 done, 20000 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{setup}: {text}"
    );
    let stats = server.stop();
    assert_eq!(stats.accepted, 50, "{setup}");
    assert_eq!(stats.responses, 20000, "{setup}");
    assert_eq!(stats.failed, 0, "{setup}");
}

macro_rules! load_tests {
    ($($name:ident: $dispatch:ident, $engine:ident, $tls:ident;)*) => {$(
        #[test]
        fn $name() {
            fifty_clients_20000_requests(Setup {
                dispatch: Dispatch::$dispatch,
                engine: Engine::$engine,
                tls: TlsProvider::$tls,
            });
        }
    )*};
}

load_tests! {
    poll_mini_none: Poll, Mini, None;
    poll_mini_rustls: Poll, Mini, Rustls;
    poll_mini_openssl: Poll, Mini, Openssl;
    tokio_mini_none: Tokio, Mini, None;
    tokio_mini_rustls: Tokio, Mini, Rustls;
    tokio_mini_openssl: Tokio, Mini, Openssl;
    tokio_h2_none: Tokio, H2, None;
    tokio_h2_rustls: Tokio, H2, Rustls;
    tokio_h2_openssl: Tokio, H2, Openssl;
}
