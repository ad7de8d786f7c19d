# /// script
# requires-python = ">=3.9"
# dependencies = ["matplotlib>=3.7", "numpy"]
# ///
"""Plot the action sequence of each client from an h2lab action log.

Reads the CSV that `h2lab serve --trace PREFIX` writes (PREFIX.csv) and
draws one lane per client, time on the x axis from the first accept: each
action is a coloured bar as long as it took, connection events (accept,
close, refuse) are grey, and frames are ticks above (in) and below (out)
the lane. A poll loop's waits (its own lane) are drawn light, as waiting.
By default the window is the clients' activity (a server idles before its
first client and after its last); --start-us and --end-us choose another.
The output format follows the file name: .png or .svg.
"""

import argparse
import sys

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
    "work": "#ffbb78",
}
CONN_COLOUR = "#7f7f7f"
OTHER_COLOUR = "#8c564b"
# The loop's waits (`poll_wait`): time it had nothing to do, not work.
WAIT_COLOUR = "#dcdcdc"


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


class Log:
    """An action log in columns (one array each), not a dict per row: a
    million records take tens of megabytes, not gigabytes."""

    KINDS = ["conn", "action", "frame-in", "frame-out", "loop"]

    def __init__(self, ts_ns, dur_ns, client, kind, name, names):
        import numpy as np

        self.ts_ns = np.asarray(ts_ns, dtype=np.int64)
        self.dur_ns = np.asarray(dur_ns, dtype=np.int64)
        self.client = np.asarray(client, dtype=np.int64)
        self.kind = np.asarray(kind, dtype=np.int8)
        self.name = np.asarray(name, dtype=np.int32)
        self.names = names  # code -> action name or frame type

    def __len__(self):
        return len(self.ts_ns)

    def clients(self):
        """The clients (not the dispatch's own track, 0)."""
        return {int(c) for c in set(self.client[self.kind != self.KINDS.index("loop")].tolist())}

    def origin_ns(self):
        """Where the x axis starts: the first accept (else the first
        client record, else the trace's start)."""
        import numpy as np

        conn = self.kind == self.KINDS.index("conn")
        accept = self.names.index("accept") if "accept" in self.names else -1
        accepts = self.ts_ns[conn & (self.name == accept)]
        if len(accepts):
            return int(accepts.min())
        own = self.ts_ns[self.kind != self.KINDS.index("loop")]
        return int(own.min()) if len(own) else 0


class Drawn:
    """What a plot holds: bars and ticks drawn, the x window (µs from the
    first accept), and the legend's labels in order."""

    def __init__(self, bars, ticks, xlim, legend):
        self.bars, self.ticks, self.xlim, self.legend = bars, ticks, xlim, legend


def read_log(path):
    """The action log, in columns; a clear error for anything else."""
    from array import array

    ts, dur, client, kind, name = array("q"), array("q"), array("q"), array("b"), array("i")
    names, name_code = [], {}
    kind_code = {k: i for i, k in enumerate(Log.KINDS)}
    with open(path, newline="") as f:
        header = f.readline().rstrip("\r\n").split(",")
        if header != COLUMNS:
            raise ValueError(f"{path}: not an h2lab action log (header {header})")
        for line, text in enumerate(f, start=2):
            cols = text.rstrip("\r\n").split(",")
            if len(cols) != len(COLUMNS):
                raise ValueError(f"{path}:{line}: {len(cols)} columns, expected {len(COLUMNS)}")
            try:
                ts.append(int(cols[0]))
                dur.append(int(cols[1]))
                client.append(int(cols[2]))
                kind.append(kind_code[cols[3]])
            except (ValueError, KeyError):
                raise ValueError(f"{path}:{line}: not a number or an unknown kind in {cols}")
            code = name_code.get(cols[4])
            if code is None:
                code = name_code[cols[4]] = len(names)
                names.append(cols[4])
            name.append(code)
    return Log(ts, dur, client, kind, name, names)


def plot(log, out, clients=None, start_us=None, end_us=None, title=None):
    """Draw the lanes; returns a `Drawn`. One draw call per colour, however
    many bars. Times are µs from the first accept (`Log.origin_ns`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Patch

    origin = log.origin_ns()
    start = (log.ts_ns - origin) / 1000
    end = start + log.dur_ns / 1000
    kind = {k: i for i, k in enumerate(Log.KINDS)}
    chosen = np.ones(len(log), dtype=bool)
    if clients is not None:
        chosen &= np.isin(log.client, sorted(clients))
    # The default window: the chosen clients' own records (the loop's
    # first wait, before any client came, would take the whole axis).
    own = chosen & (log.kind != kind["loop"])
    if not own.any():
        raise ValueError("nothing to plot: no row matches the clients and time window")
    lo = start_us if start_us is not None else float(start[own].min())
    hi = end_us if end_us is not None else float(end[own].max())
    if hi <= lo:
        hi = lo + 1.0
    if start_us is None and end_us is None:
        pad = (hi - lo) * 0.02
        lo, hi = lo - pad, hi + pad
    shown = chosen & (end >= lo) & (start <= hi)
    if not (shown & (log.kind != kind["loop"])).any():
        raise ValueError("nothing to plot: no row matches the clients and time window")
    lanes = sorted(set(log.client[shown].tolist()))
    lane = np.searchsorted(np.asarray(lanes), log.client)

    height = max(2.5, 0.45 * len(lanes) + 1.5)
    fig, ax = plt.subplots(figsize=(12, height))
    # A bar is a thick line from its start to its end: its width in points
    # fills most of a lane.
    lane_points = (height - 1.5) * 72 / max(len(lanes), 1) * 0.6
    used, n_bars = [], 0
    bar_kinds = np.isin(log.kind, [kind["action"], kind["conn"], kind["loop"]]) & shown
    colours = {code: ACTION_COLOURS.get(name, OTHER_COLOUR) for code, name in enumerate(log.names)}
    groups = [("waiting (the loop in poll)", WAIT_COLOUR, bar_kinds & (log.kind == kind["loop"])),
              ("accept / close / refuse", CONN_COLOUR, bar_kinds & (log.kind == kind["conn"]))]
    work = bar_kinds & (log.kind == kind["action"])
    for colour in sorted(set(colours.values())):
        codes = [c for c, col in colours.items() if col == colour]
        groups.append((None, colour, work & np.isin(log.name, codes)))
    for label, colour, pick in groups:
        if not pick.any():
            continue
        x0 = start[pick]
        x1 = np.maximum(end[pick], x0 + (hi - lo) / 5000)
        y = lane[pick].astype(float)
        segments = np.stack([np.column_stack([x0, y]), np.column_stack([x1, y])], axis=1)
        ax.add_collection(LineCollection(segments, colors=colour, linewidths=lane_points,
                                         capstyle="butt"))
        n_bars += int(pick.sum())
        if label is not None:
            used.append((label, colour))
        else:
            present = {log.names[c] for c in set(log.name[pick].tolist())}
            used += [(n, colour) for n in ACTION_COLOURS if n in present]
            if any(n not in ACTION_COLOURS for n in present):
                used.append(("other action", colour))
    # The legend in the order of the data flow, then the rest.
    order = list(ACTION_COLOURS) + ["other action", "accept / close / refuse",
                                    "waiting (the loop in poll)"]
    used.sort(key=lambda u: order.index(u[0]))
    n_ticks = 0
    for k, offset, colour, label in [("frame-in", -0.38, "black", "frame in"),
                                     ("frame-out", 0.38, "#ff7f0e", "frame out")]:
        pick = shown & (log.kind == kind[k])
        if pick.any():
            ax.plot(start[pick], lane[pick] + offset, "|", color=colour, markersize=5, label=label)
            n_ticks += int(pick.sum())
    # The y axis is inverted below (client 1 on top): a smaller y is higher.
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels(["poll loop" if c == 0 else f"client {c}" for c in lanes])
    ax.set_ylim(len(lanes) - 0.5, -0.5)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("time since the first accept (µs)")
    ax.set_title(title or "h2lab: actions per client")
    legend = [Patch(color=colour, label=name) for name, colour in used]
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=legend + handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Drawn(n_bars, n_ticks, (lo, hi), [name for name, _ in used])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", help="action log written by `h2lab serve --trace PREFIX` (PREFIX.csv)")
    parser.add_argument("-o", "--output", default="actions.png",
                        help="image to write, .png or .svg (default: actions.png)")
    parser.add_argument("--clients", type=parse_clients, metavar="LIST",
                        help="clients to show, e.g. 1,3-5 (default: all)")
    parser.add_argument("--start-us", type=float, metavar="US",
                        help="left edge of the time window, in µs since the first accept "
                             "(default: the clients' first record)")
    parser.add_argument("--end-us", type=float, metavar="US",
                        help="right edge of the time window, in µs since the first accept "
                             "(default: the clients' last record)")
    parser.add_argument("--title", help="plot title")
    args = parser.parse_args(argv)
    if not args.output.lower().endswith((".png", ".svg")):
        parser.error(f"--output must end in .png or .svg: {args.output}")
    if args.start_us is not None and args.end_us is not None and args.start_us >= args.end_us:
        parser.error("--start-us must be before --end-us")
    try:
        log = read_log(args.csv)
        drawn = plot(log, args.output, args.clients, args.start_us, args.end_us, args.title)
    except (OSError, ValueError) as e:
        print(f"plot_actions: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {drawn.bars} actions, {drawn.ticks} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
