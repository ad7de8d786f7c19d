"""The viewer on an action log recorded from a real server run.

Needs the h2lab binary (built by `cargo test`; or set H2LAB_BIN) and h2load.
A missing one is a failure, not a skip.
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import plot_actions  # noqa: E402

REPO = HERE.parent


def h2lab_bin():
    path = Path(os.environ.get("H2LAB_BIN", REPO / "target" / "debug" / "h2lab"))
    assert path.is_file(), f"{path} missing: run `cargo build` first (or set H2LAB_BIN)"
    return path


@pytest.fixture(scope="module")
def recorded_log(tmp_path_factory):
    """Serves with --trace, drives 3 clients with h2load, stops with SIGTERM."""
    assert shutil.which("h2load"), "h2load missing: apt-get install nghttp2-client"
    prefix = tmp_path_factory.mktemp("trace") / "run"
    server = subprocess.Popen(
        [h2lab_bin(), "serve", "--dispatch", "poll", "--tls", "rustls", "--trace", str(prefix)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on "), line
        url = line.split()[-1]
        load = subprocess.run(["h2load", "-n", "300", "-c", "3", "-m", "10", url],
                              capture_output=True, text=True, timeout=60)
        assert "300 succeeded" in load.stdout, load.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=10)
    assert server.returncode == 0, err
    assert "0 dropped" in err, err
    return Path(f"{prefix}.csv")


def distinct_colours(png):
    import matplotlib.image as mpimg

    pixels = mpimg.imread(png)
    return {tuple(p[:3]) for row in pixels[::4] for p in row[::4]}


def test_plots_every_client_lane_to_png(recorded_log, tmp_path):
    out = tmp_path / "actions.png"
    assert plot_actions.main([str(recorded_log), "-o", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert len(distinct_colours(out)) > 8, "a blank or one-colour image"
    log = plot_actions.read_log(recorded_log)
    assert log.clients() == {1, 2, 3}


def test_svg_with_a_client_subset_and_time_window(recorded_log, tmp_path):
    log = plot_actions.read_log(recorded_log)
    origin = log.origin_ns()
    # The middle of client 2's own rows: the window has some of them.
    own = sorted(log.ts_ns[log.client == 2].tolist())
    mid = (own[len(own) // 2] - origin) / 1000
    lo, hi = mid - 500, mid + 500
    out = tmp_path / "actions.svg"
    code = plot_actions.main([str(recorded_log), "-o", str(out), "--clients", "2-3",
                              "--start-us", str(lo), "--end-us", str(hi)])
    assert code == 0
    svg = out.read_text()
    assert "client 2" in svg or "client 3" in svg
    assert "client 1" not in svg
    # What the picture holds: the bars of clients 2 and 3 that overlap the
    # window, counted here row by row, and fewer than all of theirs.
    bars = {"action", "conn", "loop"}
    rows = [(int(c), plot_actions.Log.KINDS[k], (t - origin) / 1000, (t + d - origin) / 1000)
            for c, k, t, d in zip(log.client.tolist(), log.kind.tolist(),
                                  log.ts_ns.tolist(), log.dur_ns.tolist())]
    theirs = [r for r in rows if r[0] in (2, 3) and r[1] in bars]
    inside = [r for r in theirs if r[3] >= lo and r[2] <= hi]
    drawn = plot_actions.plot(log, tmp_path / "again.svg", clients={2, 3},
                              start_us=lo, end_us=hi)
    assert drawn.xlim == (lo, hi)
    assert drawn.bars == len(inside) and 0 < drawn.bars < len(theirs), (drawn.bars, len(theirs))


def test_the_default_window_is_the_clients_activity(recorded_log, tmp_path):
    """The poll loop waits before the first client and after the last: its
    waits are drawn as waiting, and do not set the window; time counts from
    the first accept."""
    log = plot_actions.read_log(recorded_log)
    origin = log.origin_ns()
    loop = log.kind == plot_actions.Log.KINDS.index("loop")
    assert loop.any(), "a poll server's trace has the loop's waits"
    first = (log.ts_ns[~loop].min() - origin) / 1000
    last = ((log.ts_ns + log.dur_ns)[~loop].max() - origin) / 1000
    assert first == 0, "the first client record is its accept"
    drawn = plot_actions.plot(log, tmp_path / "default.png")
    lo, hi = drawn.xlim
    assert lo <= first and hi >= last
    assert hi - lo <= 1.05 * (last - first), (drawn.xlim, first, last)
    waits = (log.ts_ns + log.dur_ns)[loop]
    assert ((waits - origin) / 1000 > hi).any() or ((log.ts_ns[loop] - origin) / 1000 < lo).any(), \
        "some wait lies outside the clients' activity, and is cut"
    assert drawn.legend[0] == "read_socket"
    assert drawn.legend[-1] == "waiting (the loop in poll)"
    assert "other action" not in drawn.legend


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert plot_actions.main([str(bad), "-o", str(tmp_path / "x.png")]) == 2
    assert "not an h2lab action log" in capsys.readouterr().err
    assert plot_actions.main([str(tmp_path / "missing.csv")]) == 2
    with pytest.raises(SystemExit):
        plot_actions.main([str(bad), "--clients", "x"])
    with pytest.raises(SystemExit):
        plot_actions.main([str(bad), "-o", "plot.jpg"])


def test_client_lists():
    assert plot_actions.parse_clients("1,3-5") == {1, 3, 4, 5}
    with pytest.raises(Exception):
        plot_actions.parse_clients("5-3")


def test_a_million_records_plot_in_bounded_time_and_memory(tmp_path):
    """The full-run view of a long trace: 1,000,000 generated records (the
    mix of a poll/mini run at 10 in flight over 20 clients) plotted in a
    process of its own, whose time and peak memory are measured. The issue's
    targets are 30 s and 1 GB; the time bound here is wider, a guard against
    the minutes the one-bar-per-call plot took, on a loaded CI machine."""
    import resource
    import time

    big = tmp_path / "big.csv"
    kinds = [("action", "read_socket", ""), ("action", "decrypt", ""), ("action", "engine", ""),
             ("frame-in", "HEADERS", "END_STREAM|END_HEADERS"), ("frame-out", "HEADERS", "END_HEADERS"),
             ("frame-out", "DATA", "END_STREAM"), ("action", "encrypt", ""),
             ("action", "write_socket", ""), ("loop", "poll_wait", "")]
    with open(big, "w") as f:
        f.write(",".join(plot_actions.COLUMNS) + "\n")
        ts = 0
        for i in range(1_000_000):
            kind, name, state = kinds[i % len(kinds)]
            ts += 97
            client = 0 if kind == "loop" else 1 + (i // len(kinds)) % 20
            dur = 0 if kind.startswith("frame") else 400 + i % 300
            stream = str(2 * (i // len(kinds)) + 1) if kind.startswith("frame") else ""
            f.write(f"{ts},{dur},{client},{kind},{name},{stream},12,{state}\n")
    out = tmp_path / "big.png"
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(HERE / "plot_actions.py"), str(big), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert done.returncode == 0, done.stderr
    print(f"1,000,000 records: {seconds:.1f} s, peak {peak_mib:.0f} MiB")
    assert peak_mib < 1024, f"peak memory {peak_mib:.0f} MiB"
    assert seconds < 120, f"{seconds:.1f} s"
    assert out.stat().st_size > 10_000
    assert len(distinct_colours(out)) > 8
