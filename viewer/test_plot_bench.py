"""The bench charts on a CSV from a real (tiny) `h2lab bench` run.

Needs the h2lab binary (built by `cargo test`; or set H2LAB_BIN).
"""

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import plot_bench  # noqa: E402
from test_plot_actions import distinct_colours, h2lab_bin  # noqa: E402


@pytest.fixture(scope="module")
def bench_csv(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.csv"
    run = subprocess.run(
        [h2lab_bin(), "bench", "--dispatch", "poll,thread", "--tls", "none,rustls",
         "--clients", "1,2", "--pipeline", "1,10", "--duration", "0.2", "--repeat", "1",
         "--precision", "0", "--no-count", "--out", str(out)],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return out


def test_requests_per_second_chart(bench_csv, tmp_path):
    rows = plot_bench.read_medians(bench_csv)
    assert len(rows) == 2 * 2 * 2 * 2  # dispatch × tls × clients × pipeline
    png = tmp_path / "bench.png"
    assert plot_bench.main([str(bench_csv), "-o", str(png)]) == 0
    assert png.stat().st_size > 10_000
    assert len(distinct_colours(png)) > 8


def test_latency_chart_svg(bench_csv, tmp_path):
    svg = tmp_path / "latency.svg"
    assert plot_bench.main([str(bench_csv), "-o", str(svg), "--latency"]) == 0
    text = svg.read_text()
    assert "poll/mini (rustls) p99" in text and "2 clients, TLS" in text


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,x\n")
    assert plot_bench.main([str(bad), "-o", str(tmp_path / "x.png")]) == 2
    assert "not an h2lab bench CSV" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        plot_bench.main([str(bad), "-o", "chart.gif"])


def test_grid_log_scale_and_marks(bench_csv, tmp_path):
    # The bench wrote its machine block as `#` lines: the reader skips them.
    text = bench_csv.read_text()
    assert text.startswith("# ")
    lines = text.splitlines()
    header = next(l for l in lines if l.startswith("kind,"))
    cols = header.split(",")
    # One median cell with failures and a wide spread.
    for i, line in enumerate(lines):
        if line.startswith("median,"):
            row = line.split(",")
            row[cols.index("failed")] = "7"
            row[cols.index("wide")] = "true"
            lines[i] = ",".join(row)
            break
    marked = tmp_path / "marked.csv"
    marked.write_text("\n".join(lines) + "\n")
    rows = plot_bench.read_medians(marked)
    assert sum(r["failed"] > 0 for r in rows) == 1 and sum(r["wide"] for r in rows) == 1
    svg = tmp_path / "log.svg"
    assert plot_bench.main([str(marked), "-o", str(svg), "--log"]) == 0
    out = svg.read_text()
    assert "requests/s (log)" in out
    assert "#ff0000" in out  # the red ring
    # A 2 × 2 grid: clients 1 and 2, h2c and TLS.
    for title in ("1 client, h2c", "1 client, TLS", "2 clients, h2c", "2 clients, TLS"):
        assert title in out
    # A cell that never settled within --precision is hollow too.
    for i, line in enumerate(lines):
        if line.startswith("median,") and ",true," not in line:
            row = line.split(",")
            row[cols.index("settled")] = "false"
            lines[i] = ",".join(row)
            break
    unsettled = tmp_path / "unsettled.csv"
    unsettled.write_text("\n".join(lines) + "\n")
    assert sum(r["wide"] for r in plot_bench.read_medians(unsettled)) == 2
    # CSVs from before the hosts' columns (2 fewer), the network's
    # columns (11 more), what each response carried, the source and the
    # mix (7 more), the intervals and counts (11 more), the body and
    # offload axes (three more), the work axis (one more) and the
    # machine's pace (three more) read too.
    for fewer in (2, 13, 20, 31, 34, 35, 38):
        older = tmp_path / f"older-{fewer}.csv"
        older.write_text("\n".join(",".join(l.split(",")[:-fewer])
                                   for l in lines if not l.startswith("#")) + "\n")
        assert len(plot_bench.read_medians(older)) == len(rows)


def test_threads_chart_from_a_scaling_run(tmp_path, capsys):
    """`bench --threads 1,2` against tokio and poll: every cell has its
    threads in the CSV, and the scaling chart draws a line per server."""
    csv_path = tmp_path / "threads.csv"
    run = subprocess.run(
        [h2lab_bin(), "bench", "--dispatch", "tokio,poll,single", "--tls", "none",
         "--clients", "4", "--pipeline", "10", "--threads", "1,2", "--duration", "0.2",
         "--warm-up", "0", "--repeat", "1", "--precision", "0", "--no-count",
         "--out", str(csv_path)],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "poll/mini/none ×2" in run.stdout and "tokio/mini/none ×1" in run.stdout
    rows = plot_bench.read_medians(csv_path)
    # tokio and poll at 1 and 2 threads; single once, as it is.
    assert sorted((r["dispatch"], r["threads"]) for r in rows) == [
        ("poll", 1), ("poll", 2), ("single", 0), ("tokio", 1), ("tokio", 2)]
    svg = tmp_path / "threads.svg"
    assert plot_bench.main([str(csv_path), "-o", str(svg), "--threads"]) == 0
    out = svg.read_text()
    assert "server threads" in out and "server CPU µs/request" in out
    assert "poll/mini" in out and "tokio/mini" in out
    # The pipeline chart keeps the thread counts apart: one panel (4
    # clients, h2c), a line for each of poll ×1, poll ×2, tokio ×1, tokio ×2
    # and single.
    png = tmp_path / "pipeline.png"
    capsys.readouterr()
    assert plot_bench.main([str(csv_path), "-o", str(png)]) == 0
    assert capsys.readouterr().out == f"wrote {png}: 5 lines\n"
    assert len({plot_bench.label(r) for r in rows}) == 5
    assert len(distinct_colours(png)) > 5
