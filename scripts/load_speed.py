#!/usr/bin/env python3
"""How fast is `h2lab load` next to h2load? Side by side in one run.

Starts `h2lab serve --dispatch poll --tls none` pinned to one CPU, then runs
each load client pinned to another, interleaved REPEAT times, and prints the
median req/s and the load's own CPU µs per request (from the child's rusage)
per cell, with min-max. Also `-t 2` against `-t 1`.

    cargo build --release
    python3 scripts/load_speed.py [--repeat 5] [--seconds 2] [--server-cpu 0] [--load-cpu 1]
                                  [--server-threads 1]
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

H2LAB = os.path.join(os.path.dirname(__file__), "..", "target", "release", "h2lab")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WARM_UP = 1  # s, for both clients (h2load takes whole seconds)


def timed(cmd):
    """Runs cmd; its stdout and the CPU seconds it used (user + sys, from
    the reaped child's rusage)."""
    r0 = os.times()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    r1 = os.times()
    if p.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} exited {p.returncode}: {err.decode()}")
    cpu = (r1.children_user + r1.children_system) - (r0.children_user + r0.children_system)
    return out.decode(), cpu


def per_request(cpu, rps, seconds):
    """CPU µs per request, the warm-up (at the same rate) included."""
    return cpu * 1e6 / max(rps * (seconds + WARM_UP), 1)


def h2lab_load(url, c, m, t, cpus, seconds):
    out, cpu = timed(["taskset", "-c", cpus, H2LAB, "load", "-t", str(t), "-c", str(c), "-m", str(m),
                      "-D", f"{seconds:g}s", "--warm-up", f"{WARM_UP}s", "--json", url])
    report = json.loads(out)
    if report["failed"] or report["connection_errors"]:
        sys.exit(f"h2lab load failed requests: {out}")
    rps = report["req_per_s"]
    return rps, per_request(cpu, rps, seconds)


def h2load(url, c, m, cpus, seconds):
    out, cpu = timed(["taskset", "-c", cpus, "h2load", "-t", "1", "-c", str(c), "-m", str(m),
                      "-D", f"{seconds:g}", "--warm-up-time", str(WARM_UP), url])
    rps = float(re.search(r"finished in [0-9.]+\w*, ([0-9.]+) req/s", out).group(1))
    if not re.search(r" 0 failed, 0 errored", out):
        sys.exit(f"h2load failed requests: {out}")
    return rps, per_request(cpu, rps, seconds)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--load-cpu", default="1", help="CPUs for the load (e.g. 4,5 to let -t 2 scale)")
    ap.add_argument("--server-threads", type=int, default=1, help="poll reactors (--threads N)")
    args = ap.parse_args()
    port = free_port()
    threads = ["--threads", str(args.server_threads)] if args.server_threads > 1 else []
    server = subprocess.Popen(["taskset", "-c", args.server_cpu, H2LAB, "serve", "--dispatch", "poll",
                               "--tls", "none", "--port", str(port)] + threads,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    server.stdout.readline()
    url = f"http://127.0.0.1:{port}/"
    both = f"{args.server_cpu},{args.load_cpu}"
    runs = {}
    cells = [
        ("h2lab load -t 1", 5, 100, lambda: h2lab_load(url, 5, 100, 1, args.load_cpu, args.seconds)),
        ("h2load -t 1", 5, 100, lambda: h2load(url, 5, 100, args.load_cpu, args.seconds)),
        ("h2lab load -t 1", 50, 1, lambda: h2lab_load(url, 50, 1, 1, args.load_cpu, args.seconds)),
        ("h2load -t 1", 50, 1, lambda: h2load(url, 50, 1, args.load_cpu, args.seconds)),
        ("h2lab load -t 2 (load CPU only)", 4, 100,
         lambda: h2lab_load(url, 4, 100, 2, args.load_cpu, args.seconds)),
        ("h2lab load -t 1 (load CPU only)", 4, 100,
         lambda: h2lab_load(url, 4, 100, 1, args.load_cpu, args.seconds)),
        (f"h2lab load -t 2 (CPUs {both}, shared with the server)", 4, 100,
         lambda: h2lab_load(url, 4, 100, 2, both, args.seconds)),
    ]
    try:
        for r in range(args.repeat):
            for name, c, m, fn in cells:
                runs.setdefault((name, c, m), []).append(fn())
            print(f"run {r + 1}/{args.repeat} done", file=sys.stderr)
    finally:
        server.terminate()
        server.wait()
    print(f"server: poll/mini/none x{args.server_threads} on CPU {args.server_cpu}; load on CPU {args.load_cpu}; "
          f"{args.repeat} interleaved runs of {args.seconds} s; medians (min-max)\n")
    print("| load | clients × streams | req/s | load CPU µs/request |")
    print("|---|---|---|---|")
    for (name, c, m), v in runs.items():
        rps = [x[0] for x in v]
        cpu = [x[1] for x in v]
        print(f"| {name} | {c} × {m} | {statistics.median(rps):,.0f} ({min(rps):,.0f}–{max(rps):,.0f}) "
              f"| {statistics.median(cpu):.2f} ({min(cpu):.2f}–{max(cpu):.2f}) |")


if __name__ == "__main__":
    main()
