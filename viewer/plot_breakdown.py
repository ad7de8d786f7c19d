# /// script
# requires-python = ">=3.9"
# dependencies = ["matplotlib>=3.7"]
# ///
"""Draw where each request's time went, one bar per setup, from analyses.

Reads the JSON of `h2lab analyze PREFIX... --json` (one file or several,
each an array of analyses) and draws two panels side by side, one bar
per trace:

* latency: the mean time per request from its HEADERS in to the end of
  the write that carried its answer, stacked by component (queued, read,
  decrypt, engine, work, encrypt, waiting for the write, the write);
* cost: the serving threads' own time per request in each action, stacked
  (the poll loop's time outside actions on top, where it is recorded; a
  bar whose dispatch records no waits, such as tokio's, says that its
  loop's own time is not in it).

Bars are labelled by setup (and trace, when two share a setup); the output
format follows the file name: .png or .svg.
"""

import argparse
import json
import sys

# One colour per component, in the order of the request's path; actions
# take the colours of plot_actions.py so that pictures compare.
COMPONENT_COLOURS = {
    "queued": "#c7c7c7",
    "read": "#1f77b4",
    "decrypt": "#17becf",
    "engine": "#d62728",
    "work": "#ffbb78",
    "encrypt": "#bcbd22",
    "wait_for_write": "#e5e5e5",
    "write": "#2ca02c",
    "other": "#7f7f7f",
}
COMPONENT_LABELS = {
    "queued": "queued (before the answer)",
    "wait_for_write": "answered, waiting for the write",
}
ACTION_COLOURS = {
    "accept": "#7f7f7f",
    "close": "#7f7f7f",
    "refuse": "#7f7f7f",
    "read_socket": "#1f77b4",
    "handshake": "#9467bd",
    "decrypt": "#17becf",
    "engine": "#d62728",
    "work": "#ffbb78",
    "encrypt": "#bcbd22",
    "move_encrypted": "#e377c2",
    "write_socket": "#2ca02c",
    "(loop, outside actions)": "#dbdb8d",
}


def read_analyses(paths):
    """Every analysis in the files, in order; a clear error for anything else."""
    found = []
    for path in paths:
        with open(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not JSON ({e}): expected `h2lab analyze --json`")
        if not isinstance(data, list) or not all(
                isinstance(a, dict) and "components" in a and "actions" in a for a in data):
            raise ValueError(f"{path}: not the output of `h2lab analyze --json`")
        found.extend(data)
    if not found:
        raise ValueError("no analysis in the files")
    return found


def labels(analyses):
    """Each bar's label: its setup, with its trace's name where setups repeat."""
    setups = [a.get("setup", "?") for a in analyses]
    out = []
    for a, setup in zip(analyses, setups):
        if setups.count(setup) > 1:
            out.append(f"{setup}\n{a['trace'].rsplit('/', 1)[-1]}")
        else:
            out.append(setup)
    return out


class Drawn:
    """What a plot holds: per bar, the heights stacked in each panel (µs)."""

    def __init__(self, latency, cost, legend):
        self.latency = latency
        self.cost = cost
        self.legend = legend


def plot(analyses, out, title=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = labels(analyses)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 6.4))
    x = range(len(analyses))
    width = 0.6

    latency = [0.0] * len(analyses)
    legend = []
    for comp, colour in COMPONENT_COLOURS.items():
        heights = []
        for a in analyses:
            c = next((c for c in a["components"] if c["name"] == comp), None)
            heights.append(c["spread"]["mean_ns"] / 1e3 if c else 0.0)
        if not any(h > 0 for h in heights):
            continue
        left.bar(x, heights, width, bottom=latency, color=colour, edgecolor="white",
                 linewidth=0.5, label=COMPONENT_LABELS.get(comp, comp))
        legend.append(comp)
        latency = [b + h for b, h in zip(latency, heights)]
    for i, total in enumerate(latency):
        left.text(i, total, f"{total:.1f}", ha="center", va="bottom", fontsize=8)
    left.set_title("latency per request (mean, µs)", fontsize=10)
    left.set_ylabel("µs per request")

    cost = [0.0] * len(analyses)
    present = []
    for a in analyses:
        for act in a["actions"]:
            if act["name"] not in present:
                present.append(act["name"])
    order = list(ACTION_COLOURS)
    present.sort(key=lambda n: order.index(n) if n in order else len(order))
    for name in present:
        heights = []
        for a in analyses:
            act = next((x for x in a["actions"] if x["name"] == name), None)
            heights.append(act["self_ns_per_request"] / 1e3 if act else 0.0)
        if not any(h > 0 for h in heights):
            continue
        right.bar(x, heights, width, bottom=cost, color=ACTION_COLOURS.get(name, "#8c564b"),
                  edgecolor="white", linewidth=0.5, label=name)
        legend.append(name)
        cost = [b + h for b, h in zip(cost, heights)]
    for i, (a, total) in enumerate(zip(analyses, cost)):
        # A dispatch that records no waits has no "outside actions" part:
        # its own scheduling is in no action, and the bar says so.
        note = "" if a.get("loop_time") else "\n+ its loop: not recorded"
        right.text(i, total, f"{total:.2f}{note}", ha="center", va="bottom", fontsize=8)
    right.set_title("the server's own time per request, by action (µs)", fontsize=10)

    for ax, totals in ((left, latency), (right, cost)):
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(0, max(max(totals), 1e-3) * 1.18)
        # Below the bars, so that no bar hides behind it.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3,
                  frameon=False)
    fig.suptitle(title or "h2lab: where each request's time went", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Drawn(latency, cost, legend)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", nargs="+", help="output of `h2lab analyze PREFIX... --json`")
    parser.add_argument("-o", "--output", default="breakdown.png",
                        help="image to write, .png or .svg (default: breakdown.png)")
    parser.add_argument("--title", help="plot title")
    args = parser.parse_args(argv)
    if not args.output.lower().endswith((".png", ".svg")):
        parser.error(f"--output must end in .png or .svg: {args.output}")
    try:
        analyses = read_analyses(args.json)
        drawn = plot(analyses, args.output, args.title)
    except (OSError, ValueError) as e:
        print(f"plot_breakdown: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {len(analyses)} bars, {len(drawn.legend)} parts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
