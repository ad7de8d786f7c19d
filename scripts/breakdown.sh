#!/usr/bin/env bash
# Four setups traced under the same load, analysed side by side, and their
# breakdown chart: the README's and docs/analyze.md's example.
#
#   scripts/breakdown.sh [REQUESTS]        (default 20000; needs a release build)
#
# Each server runs pinned to CPU 0, the built-in load (5 clients × 10 in
# flight) to CPU 1. Writes traces/breakdown/{poll-none,poll-rustls,
# tokio-none,tokio-rustls}.*, analyses.json, analyses.md and
# docs/breakdown.png.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-20000}
bin=target/release/h2lab
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
out=traces/breakdown
mkdir -p "$out"
prefixes=()
for setup in "poll none" "poll rustls" "tokio none" "tokio rustls"; do
  set -- $setup
  name="$1-$2"
  prefix="$out/$name"
  log="$out/$name.serve.log"
  taskset -c 0 "$bin" serve --dispatch "$1" --tls "$2" --trace "$prefix" > "$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q "^listening on " "$log" && break; sleep 0.05; done
  url=$(sed -n 's/^listening on //p' "$log")
  [ -n "$url" ] || { echo "$name did not start: $(cat "$log")" >&2; kill $pid; exit 1; }
  taskset -c 1 "$bin" load "$url" -k -c 5 -m 10 -n "$requests" | grep -E "^(finished|requests)"
  kill -INT $pid
  wait $pid
  prefixes+=("$prefix")
done
"$bin" analyze "${prefixes[@]}" --json > "$out/analyses.json"
"$bin" analyze "${prefixes[@]}" --markdown > "$out/analyses.md"
"$bin" analyze "${prefixes[@]}"
python3 viewer/plot_breakdown.py "$out/analyses.json" -o docs/breakdown.png \
  --title "h2lab: where each request's time went (5 clients × 10 in flight, $requests requests)"
