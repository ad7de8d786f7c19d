# /// script
# requires-python = ">=3.9"
# dependencies = ["matplotlib>=3.7"]
# ///
"""Plot the action sequence of each client from an h2lab action log.

Reads the CSV that `h2lab serve --trace PREFIX` writes (PREFIX.csv) and
draws one lane per client, time on the x axis: each action is a coloured
bar as long as it took, connection events (accept, close, refuse) are
grey, and frames are ticks above (in) and below (out) the lane.
The output format follows the file name: .png or .svg.
"""

import argparse
import csv
import sys
from collections import defaultdict

COLUMNS = ["ts_ns", "dur_ns", "client", "kind", "name", "stream", "bytes", "state"]

# One fixed colour per action, so that plots of different runs compare.
ACTION_COLOURS = {
    "read_socket": "#1f77b4",
    "handshake": "#9467bd",
    "decrypt": "#17becf",
    "engine": "#d62728",
    "encrypt": "#bcbd22",
    "move_encrypted": "#e377c2",
    "write_socket": "#2ca02c",
}
CONN_COLOUR = "#7f7f7f"
OTHER_COLOUR = "#8c564b"


def parse_clients(text):
    """'1,3-5' -> {1, 3, 4, 5}."""
    chosen = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                chosen.update(range(lo, hi + 1))
            else:
                chosen.add(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a client list: {text!r} (e.g. 1,3-5)")
    if not chosen:
        raise argparse.ArgumentTypeError("no client chosen")
    return chosen


def read_log(path):
    """Rows of the action log, as dicts with numbers where numbers belong."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != COLUMNS:
            raise ValueError(f"{path}: not an h2lab action log (header {header})")
        rows = []
        for line, cols in enumerate(reader, start=2):
            if len(cols) != len(COLUMNS):
                raise ValueError(f"{path}:{line}: {len(cols)} columns, expected {len(COLUMNS)}")
            row = dict(zip(COLUMNS, cols))
            try:
                for key in ("ts_ns", "dur_ns", "client", "bytes"):
                    row[key] = int(row[key])
            except ValueError:
                raise ValueError(f"{path}:{line}: not a number in {cols}")
            rows.append(row)
    return rows


def plot(rows, out, clients=None, start_us=None, end_us=None, title=None):
    """Draw the lanes; returns the number of bars and ticks drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    def visible(row):
        start = row["ts_ns"] / 1000
        end = start + row["dur_ns"] / 1000
        if clients is not None and row["client"] not in clients:
            return False
        if start_us is not None and end < start_us:
            return False
        if end_us is not None and start > end_us:
            return False
        return True

    shown = [r for r in rows if visible(r)]
    if not shown:
        raise ValueError("nothing to plot: no row matches the clients and time window")
    lanes = sorted({r["client"] for r in shown})
    lane_of = {c: i for i, c in enumerate(lanes)}
    bars = defaultdict(list)  # colour -> [(lane, start, width)]
    ticks_in, ticks_out = [], []
    used = set()
    for r in shown:
        start = r["ts_ns"] / 1000
        if r["kind"] in ("action", "conn"):
            if r["kind"] == "conn":
                colour = CONN_COLOUR
                used.add("accept / close / refuse")
            else:
                colour = ACTION_COLOURS.get(r["name"], OTHER_COLOUR)
                used.add(r["name"])
            bars[colour].append((lane_of[r["client"]], start, max(r["dur_ns"] / 1000, 0.05)))
        elif r["kind"] == "frame-in":
            ticks_in.append((lane_of[r["client"]], start))
        elif r["kind"] == "frame-out":
            ticks_out.append((lane_of[r["client"]], start))

    height = max(2.5, 0.45 * len(lanes) + 1.5)
    fig, ax = plt.subplots(figsize=(12, height))
    for colour, items in bars.items():
        for lane, start, width in items:
            ax.broken_barh([(start, width)], (lane - 0.3, 0.6), facecolors=colour, linewidth=0)
    if ticks_in:
        ax.plot([t for _, t in ticks_in], [l - 0.38 for l, _ in ticks_in], "|", color="black",
                markersize=5, label="frame in")
    if ticks_out:
        ax.plot([t for _, t in ticks_out], [l + 0.38 for l, _ in ticks_out], "|", color="#ff7f0e",
                markersize=5, label="frame out")
    # The y axis is inverted below (client 1 on top): a smaller y is higher.
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels([f"client {c}" for c in lanes])
    ax.invert_yaxis()
    ax.set_xlabel("time since the trace started (µs)")
    if start_us is not None or end_us is not None:
        lo, hi = ax.get_xlim()
        ax.set_xlim(start_us if start_us is not None else lo, end_us if end_us is not None else hi)
    ax.set_title(title or "h2lab: actions per client")
    legend = [Patch(color=ACTION_COLOURS.get(n, OTHER_COLOUR), label=n)
              for n in ACTION_COLOURS if n in used]
    legend += [Patch(color=OTHER_COLOUR, label="other action")] if any(
        n not in ACTION_COLOURS and n != "accept / close / refuse" for n in used) else []
    if "accept / close / refuse" in used:
        legend.append(Patch(color=CONN_COLOUR, label="accept / close / refuse"))
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=legend + handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return sum(len(v) for v in bars.values()), len(ticks_in) + len(ticks_out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", help="action log written by `h2lab serve --trace PREFIX` (PREFIX.csv)")
    parser.add_argument("-o", "--output", default="actions.png",
                        help="image to write, .png or .svg (default: actions.png)")
    parser.add_argument("--clients", type=parse_clients, metavar="LIST",
                        help="clients to show, e.g. 1,3-5 (default: all)")
    parser.add_argument("--start-us", type=float, metavar="US",
                        help="left edge of the time window, in µs since the trace started")
    parser.add_argument("--end-us", type=float, metavar="US",
                        help="right edge of the time window, in µs since the trace started")
    parser.add_argument("--title", help="plot title")
    args = parser.parse_args(argv)
    if not args.output.lower().endswith((".png", ".svg")):
        parser.error(f"--output must end in .png or .svg: {args.output}")
    if args.start_us is not None and args.end_us is not None and args.start_us >= args.end_us:
        parser.error("--start-us must be before --end-us")
    try:
        rows = read_log(args.csv)
        n_bars, n_ticks = plot(rows, args.output, args.clients, args.start_us, args.end_us, args.title)
    except (OSError, ValueError) as e:
        print(f"plot_actions: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {n_bars} actions, {n_ticks} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
