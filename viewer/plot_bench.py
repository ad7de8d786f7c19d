# /// script
# requires-python = ">=3.9"
# dependencies = ["matplotlib>=3.7"]
# ///
"""Chart an h2lab bench: requests/s and latency against pipeline depth, or
requests/s and CPU per request against server threads.

Reads the CSV that `h2lab bench --out FILE.csv` writes (its `median` rows)
and draws a grid of panels, a row per client count and a column for h2c and
TLS: requests/s against pipeline depth, one line per server (the same colour
in every panel) with min–max error bars, as the seed's charts did, and one
legend beside the grid. Cells with failures get a red ring, cells not to be
trusted a hollow marker (their 95% interval never came within the bench's
--precision; without one, their repeats spread wider than 1.2x). --log puts requests/s on a
log scale; --latency plots p50 and p99 latency (log scale) instead.

--threads charts a `bench --threads LIST` run (the scaling experiment): a
row per client count × pipeline depth × h2c/TLS, requests/s on the left and
server CPU µs per request on the right, against the server's threads (tokio
workers, poll reactors, peer workers), one line per server. The output
format follows the file name: .png or .svg.
"""

import argparse
import csv
import sys
from collections import defaultdict

COLUMNS = ["kind", "client", "dispatch", "engine", "tls", "clients", "pipeline", "rep",
           "req_per_s", "req_per_s_min", "req_per_s_max", "p50_us", "p99_us",
           "cpu_us_per_req", "succeeded", "failed", "connection_errors",
           "traced", "trace_records_per_req", "trace_lost", "span_ns", "event_ns",
           "cpu_us_per_req_min", "cpu_us_per_req_max", "req_per_s_cv", "cpu_cv", "wide",
           "threads", "pace_ns", "pace_ns_min", "pace_ns_max", "work",
           "body", "goodput_mib_per_s", "offload",
           "req_per_s_ci_low", "req_per_s_ci_high", "cpu_ci_low", "cpu_ci_high", "settled",
           "ctx_switches_per_req", "syscalls_per_req", "reads_per_req", "writes_per_req",
           "octets_per_write", "requests_per_read",
           "head_fields", "head_octets", "head_dated", "body_octets", "file_reads_per_req",
           "source", "mix",
           "net", "link", "server_cpu_packets", "client_cpu_packets", "server_cpu_steered",
           "client_cpu_steered", "server_segs_in", "server_segs_out", "client_segs_in",
           "client_segs_out", "client_share", "load_hosts", "server_host"]
# The columns added with the load hosts and the server host.
HOSTS = 2
# Columns added with the network: the topology, the link, whose packets.
NET = 11
# Columns added with what each response carried, the source and the mix.
WORK = 7
# Columns added with the confidence intervals and the counts.
NEWER = 11


def read_medians(path):
    """The median rows of a bench CSV."""
    with open(path, newline="") as f:
        # `# key: value` lines before the header describe the machine.
        reader = csv.reader(line for line in f if not line.startswith("#"))
        header = next(reader, None)
        # CSVs from before the responses' work, the source and the mix
        # lack their seven columns; from before the intervals and counts,
        # theirs;
        # from before the body and offload axes, their three too; from
        # before the work axis, its column; from before the machine's pace,
        # its three; from before the threads axis, that one as well.
        # From before the network's columns, theirs too; from before the
        # load hosts, that one.
        with_net = COLUMNS[:-HOSTS]
        with_work = with_net[:-NET]
        base = with_work[:-WORK]
        older = [base[:-(NEWER + n)] for n in (3, 4, 7, 8)]
        if header not in [COLUMNS, with_net, with_work, base, base[:-NEWER]] + older:
            raise ValueError(f"{path}: not an h2lab bench CSV (header {header})")
        rows = []
        for line, cols in enumerate(reader, start=2):
            if len(cols) != len(header):
                raise ValueError(f"{path}:{line}: {len(cols)} columns, expected {len(header)}")
            row = dict(zip(header, cols))
            # Traced runs (`bench --trace-cost`) measure the tracer, not the server.
            if row["kind"] != "median" or row["traced"] == "true":
                continue
            try:
                for key in ("clients", "pipeline"):
                    row[key] = int(row[key])
                for key in ("req_per_s", "req_per_s_min", "req_per_s_max", "cpu_us_per_req"):
                    row[key] = float(row[key])
                # 0: the server's default (no --threads).
                row["threads"] = int(row.get("threads") or 0)
                row["work"] = row.get("work") or ""
                row["body"] = row.get("body") or ""
                row["offload"] = int(row.get("offload") or 0)
                for key in ("p50_us", "p99_us"):
                    row[key] = int(row[key]) if row[key] else None
                row["failed"] = int(row["failed"]) + int(row["connection_errors"])
                # Not to be trusted: it never settled within the bench's
                # --precision, or, without one (and in older CSVs), its
                # repeats spread wider than 1.2x.
                settled = row.get("settled") or ""
                row["wide"] = (settled == "false"
                               or (settled == "" and row.get("wide") == "true"))
            except ValueError:
                raise ValueError(f"{path}:{line}: not a number in {cols}")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no median rows")
    return rows


def label(row, threads=True):
    """A server's line label: `poll/mini`, or `poll/mini (rustls)` over TLS, so
    that our TLS providers and the peers' OpenSSL share one panel; `×N` with
    N server threads (`bench --threads`), unless `threads` is False; and each
    request's work (`bench --work`), its workers (`--offload`) and the
    body (`--body`)."""
    name = f'{row["dispatch"]}/{row["engine"]}'
    if threads and row["threads"]:
        name += f' ×{row["threads"]}'
    if row.get("body"):
        name += f' body={row["body"]}'
    if row.get("work"):
        name += f' {row["work"]}'
    if row.get("offload"):
        name += f' offload={row["offload"]}'
    return name if row["tls"] == "none" else f'{name} ({row["tls"]})'


def plot_threads(rows, out, title=None):
    """Requests/s and CPU µs per request against server threads, a row of two
    panels per client count × pipeline depth × h2c/TLS; returns the number of
    lines drawn (servers run with one setting only are left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["threads"]]
    groups = sorted({(r["clients"], r["pipeline"], r["tls"] != "none") for r in rows})
    if not groups:
        return 0
    servers = sorted({label(r, threads=False) for r in rows})
    colours = [matplotlib.colormaps["tab20"](i) for i in range(20)]
    fig, axes = plt.subplots(len(groups), 2, figsize=(11.8, 3.4 * len(groups)), squeeze=False)
    lines = 0
    handles = {}
    for (ax_rps, ax_cpu), (clients, pipeline, tls) in zip(axes, groups):
        series = defaultdict(list)
        for r in rows:
            if (r["clients"], r["pipeline"], r["tls"] != "none") == (clients, pipeline, tls):
                series[label(r, threads=False)].append(r)
        for server, points in sorted(series.items()):
            colour = colours[servers.index(server) % len(colours)]
            points.sort(key=lambda r: r["threads"])
            x = [p["threads"] for p in points]
            (h,) = ax_rps.plot(x, [p["req_per_s"] for p in points], "-o", color=colour)
            ax_cpu.plot(x, [p["cpu_us_per_req"] for p in points], "-o", color=colour)
            mark(ax_rps, points, x, [p["req_per_s"] for p in points])
            handles.setdefault(server, h)
            lines += 1
        where = f"{clients} client{'s' if clients != 1 else ''} × {pipeline} in flight, " \
                f"{'TLS' if tls else 'h2c'}"
        for ax, ylabel in ((ax_rps, "requests/s"), (ax_cpu, "server CPU µs/request")):
            ax.set_xticks(sorted({r["threads"] for r in rows}))
            ax.set_xlabel("server threads")
            ax.set_ylabel(ylabel)
            ax.set_ylim(bottom=0)
            ax.set_title(where, fontsize=10)
            ax.grid(alpha=0.3)
    save(fig, handles, "median;\nhollow: not to be trusted;\nred ring: failures", title, out)
    return lines


def plot(rows, out, latency=False, title=None, log=False):
    """Draws a grid of panels, a row per client count and a column per h2c/TLS,
    with one legend beside them; returns the number of lines drawn. Points of
    cells with failures are marked with a red ring, cells not to be trusted
    with a hollow marker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clients_list = sorted({r["clients"] for r in rows})
    tls_list = sorted({r["tls"] != "none" for r in rows})
    servers = sorted({label(r) for r in rows})
    # 20 distinct colours: a bench with peers has more than 10 servers.
    colours = [matplotlib.colormaps["tab20"](i) for i in range(20)]
    fig, axes = plt.subplots(len(clients_list), len(tls_list),
                             figsize=(4.6 * len(tls_list) + 2.6, 3.4 * len(clients_list)),
                             squeeze=False, sharex=True)
    lines = 0
    handles = {}
    panels = [(ax, clients, tls)
              for row_axes, clients in zip(axes, clients_list)
              for ax, tls in zip(row_axes, tls_list)]
    for ax, clients, tls in panels:
        series = defaultdict(list)
        for r in rows:
            if (r["clients"], r["tls"] != "none") == (clients, tls):
                series[label(r)].append(r)
        for server, points in sorted(series.items()):
            # One colour per server, the same in every panel.
            colour = colours[servers.index(server) % len(colours)]
            points.sort(key=lambda r: r["pipeline"])
            x = [p["pipeline"] for p in points]
            if latency:
                for key, style in (("p50_us", "-o"), ("p99_us", "--x")):
                    y = [p[key] for p in points]
                    if all(v is not None for v in y):
                        (h,) = ax.plot(x, y, style, color=colour, label=f"{server} {key[:3]}")
                        handles.setdefault(f"{server} {key[:3]}", h)
                        lines += 1
                        mark(ax, points, x, y)
            else:
                y = [p["req_per_s"] for p in points]
                low = [p["req_per_s"] - p["req_per_s_min"] for p in points]
                high = [p["req_per_s_max"] - p["req_per_s"] for p in points]
                h = ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, color=colour,
                                label=server)
                handles.setdefault(server, h)
                lines += 1
                mark(ax, points, x, y)
        ax.set_xscale("log")
        ax.set_xticks(sorted({r["pipeline"] for r in rows}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        if clients == clients_list[-1]:
            ax.set_xlabel("requests in flight per connection")
        if latency:
            ax.set_yscale("log")
            ax.set_ylabel("latency (µs, log)")
        elif log:
            ax.set_yscale("log")
            ax.set_ylabel("requests/s (log)")
        else:
            ax.set_ylabel("requests/s")
            ax.set_ylim(bottom=0)
        ax.set_title(f"{clients} client{'s' if clients != 1 else ''}, {'TLS' if tls else 'h2c'}",
                     fontsize=10)
        ax.grid(alpha=0.3)
    save(fig, handles, "median, min–max bars;\nhollow: not to be trusted;\nred ring: failures",
         title, out)
    return lines


def save(fig, handles, legend_title, title, out):
    """One legend for every panel, beside them (it covers no data), the
    title over them; writes the figure to `out` and closes it."""
    import matplotlib.pyplot as plt

    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="center left",
                   bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False,
                   title=legend_title, title_fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def mark(ax, points, x, y):
    """Hollow markers where a cell is not to be trusted, red rings where
    requests or connections failed."""
    for p, xi, yi in zip(points, x, y):
        if yi is None:
            continue
        if p["wide"]:
            ax.plot([xi], [yi], "o", markersize=5, color="white", zorder=3)
        if p["failed"]:
            ax.plot([xi], [yi], "o", markersize=11, markerfacecolor="none",
                    markeredgecolor="red", markeredgewidth=1.5, zorder=4)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", help="bench results written by `h2lab bench --out FILE.csv`")
    parser.add_argument("-o", "--output", default="bench.png",
                        help="image to write, .png or .svg (default: bench.png)")
    parser.add_argument("--latency", action="store_true",
                        help="plot p50 and p99 latency (log scale) instead of requests/s")
    parser.add_argument("--log", action="store_true",
                        help="requests/s on a log scale (servers an order of magnitude apart)")
    parser.add_argument("--threads", action="store_true",
                        help="requests/s and CPU per request against server threads "
                             "(a `bench --threads LIST` run)")
    parser.add_argument("--title", help="title over the panels")
    args = parser.parse_args(argv)
    if args.threads and (args.latency or args.log):
        parser.error("--threads draws its own axes: no --latency or --log with it")
    if not args.output.lower().endswith((".png", ".svg")):
        parser.error(f"--output must end in .png or .svg: {args.output}")
    try:
        rows = read_medians(args.csv)
        if args.threads:
            lines = plot_threads(rows, args.output, args.title)
        else:
            lines = plot(rows, args.output, args.latency, args.title, args.log)
    except (OSError, ValueError) as e:
        print(f"plot_bench: {e}", file=sys.stderr)
        return 2
    if lines == 0:
        why = "no rows with server threads: run `h2lab bench --threads LIST`" if args.threads \
            else "no latency percentiles: an h2load run?"
        print(f"plot_bench: nothing to plot ({why})", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {lines} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
