"""The breakdown chart on analyses of real traces.

Needs the h2lab binary (built by `cargo test`; or set H2LAB_BIN) and h2load.
A missing one is a failure, not a skip.
"""

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import plot_breakdown  # noqa: E402
from test_plot_actions import h2lab_bin  # noqa: E402


def traced(prefix, dispatch, tls):
    """Serves one setup with --trace under h2load (3 × 5, 150 requests)."""
    server = subprocess.Popen(
        [h2lab_bin(), "serve", "--dispatch", dispatch, "--tls", tls, "--trace", str(prefix)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on "), line
        load = subprocess.run(["h2load", "-n", "150", "-c", "3", "-m", "5", line.split()[-1]],
                              capture_output=True, text=True, timeout=60)
        assert "150 succeeded" in load.stdout, load.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=10)
    assert server.returncode == 0, err


@pytest.fixture(scope="module")
def analyses(tmp_path_factory):
    """`h2lab analyze --json` of a poll/rustls and a tokio/none trace."""
    assert shutil.which("h2load"), "h2load missing: apt-get install nghttp2-client"
    d = tmp_path_factory.mktemp("breakdown")
    traced(d / "poll", "poll", "rustls")
    traced(d / "tokio", "tokio", "none")
    out = subprocess.run([h2lab_bin(), "analyze", d / "poll", d / "tokio", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    path = d / "analyses.json"
    path.write_text(out.stdout)
    return path


def test_one_bar_per_trace_stacked_to_its_latency_and_cost(analyses, tmp_path):
    out = tmp_path / "breakdown.png"
    assert plot_breakdown.main([str(analyses), "-o", str(out)]) == 0
    assert out.stat().st_size > 10_000
    data = json.loads(analyses.read_text())
    drawn = plot_breakdown.plot(data, str(out))
    for a, latency, cost in zip(data, drawn.latency, drawn.cost):
        # The components sum to the mean latency; the actions to the own time.
        assert latency == pytest.approx(a["latency"]["mean_ns"] / 1e3, rel=1e-6)
        own = sum(x["self_ns_per_request"] for x in a["actions"]) / 1e3
        assert cost == pytest.approx(own, rel=1e-6)
    assert len(drawn.latency) == 2
    # TLS shows: a decrypt part, and the handshake among the actions.
    assert "decrypt" in drawn.legend and "handshake" in drawn.legend
    assert "write" in drawn.legend and "write_socket" in drawn.legend
    assert plot_breakdown.labels(data) == ["poll/mini/rustls", "tokio/mini/none"]


def test_svg_and_repeated_setups_are_told_apart(analyses, tmp_path):
    out = tmp_path / "b.svg"
    assert plot_breakdown.main([str(analyses), str(analyses), "-o", str(out)]) == 0
    assert out.read_text().lstrip().startswith(("<?xml", "<svg"))
    data = json.loads(analyses.read_text()) * 2
    names = plot_breakdown.labels(data)
    assert len(set(names)) == 2 and all("\n" in n for n in names)


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "an analysis"}')
    assert plot_breakdown.main([str(bad), "-o", str(tmp_path / "x.png")]) == 2
    assert "not the output of `h2lab analyze --json`" in capsys.readouterr().err
    bad.write_text("nope")
    assert plot_breakdown.main([str(bad), "-o", str(tmp_path / "x.png")]) == 2
    assert "not JSON" in capsys.readouterr().err
    assert plot_breakdown.main([str(tmp_path / "missing.json"), "-o", str(tmp_path / "x.png")]) == 2
    with pytest.raises(SystemExit):
        plot_breakdown.main([str(bad), "-o", str(tmp_path / "x.pdf")])
