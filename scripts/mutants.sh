#!/usr/bin/env bash
# Mutation testing of h2lab's sans-IO modules with cargo-mutants: each
# mutant (a changed operator, a function that returns a default, a
# condition forced true or false) is built and must fail `cargo test --lib`.
#
#   scripts/mutants.sh                 every module below (about 1,400 mutants,
#                                      7 to 8 s each on this 2-core VM)
#   scripts/mutants.sh --in-diff REV   only the mutants on lines changed
#                                      since REV, in those modules (minutes)
#   scripts/mutants.sh FILE...         these files only
#
# Needs `cargo install cargo-mutants`. Results go to mutants.out/ (caught.txt,
# missed.txt, timeout.txt, unviable.txt); the figures and the survivors left,
# each with why, are in docs/mutants.md. Not run by .ci/run: a whole pass
# takes close to two hours here, and even --in-diff builds the crate afresh
# in a copy of the tree (4 minutes) before its first mutant.
set -euo pipefail
cd "$(dirname "$0")/.."

modules=(
  src/hpack/huffman.rs
  src/hpack/table.rs
  src/hpack/decode.rs
  src/hpack/encode.rs
  src/engine/mini/request.rs
  src/engine/mini/response.rs
  src/engine/route.rs
  src/engine/date.rs
  src/engine/mini.rs
  src/frame.rs
  src/tls/client_hello.rs
  src/load/timetable.rs
  src/bench/confidence.rs
  src/bench/stats.rs
  src/server/conn/idle.rs
  src/server/dispatch/poll/state.rs
  src/analyze/timeline.rs
)

command -v cargo-mutants >/dev/null \
  || { echo "cargo-mutants missing: cargo install cargo-mutants" >&2; exit 2; }

args=()
case "${1:-}" in
  --in-diff)
    [ -n "${2:-}" ] || { echo "usage: $0 --in-diff REV" >&2; exit 2; }
    diff=$(mktemp)
    trap 'rm -f "$diff"' EXIT
    git diff "$2" -- "${modules[@]}" >"$diff"
    if [ ! -s "$diff" ]; then
      echo "no change to the mutated modules since $2"
      exit 0
    fi
    args+=(--in-diff "$diff")
    for m in "${modules[@]}"; do args+=(-f "$m"); done
    ;;
  "")
    for m in "${modules[@]}"; do args+=(-f "$m"); done
    ;;
  -*)
    echo "usage: $0 [--in-diff REV | FILE...]" >&2
    exit 2
    ;;
  *)
    for f in "$@"; do args+=(-f "$f"); done
    ;;
esac

# `--lib`: the unit tests beside the code, seconds a mutant; the
# integration tests start servers and would take minutes each.
exec cargo mutants "${args[@]}" -- --lib
