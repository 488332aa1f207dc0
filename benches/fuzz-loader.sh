#!/usr/bin/env bash
# The long run of the loader's property tests: every property of tests/loader_fuzz.rs (arbitrary
# YAML-ish text, arbitrary bytes, arbitrary SERVO_* environments and --set flags must never panic
# the loader) and of tests/secrets.rs (rendering the errors of arbitrary text for a terminal never
# panics and never shows a token), each with CASES cases (default 100000), in release mode.
#
# CI runs the same properties with their default, small case counts (SERVO_FUZZ_CASES unset); this
# script only raises the count for the run it makes.
#
# Prints, per property: cases, wall time, cases per second, and "0 panics" or the failure
# (proptest's minimal failing input). Exits non-zero if any property failed.
#
# Usage: benches/fuzz-loader.sh [CASES]          e.g. benches/fuzz-loader.sh 1000000
# Build parallelism follows CARGO_BUILD_JOBS (set it to 1 on a shared machine).
set -euo pipefail
cd "$(dirname "$0")/.."

cases="${1:-100000}"
case "$cases" in
  '' | *[!0-9]*) echo "usage: $0 [CASES] (a whole number)" >&2; exit 2 ;;
esac

echo "building the property tests (release)..."
cargo test --release --quiet --test loader_fuzz --test secrets --no-run 2>&1 | grep -v '^ *Executable' || true

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Properties are listed by the test binaries themselves, so a new property is picked up unchanged.
properties() {
  cargo test --release --quiet --test "$1" -- --list 2>/dev/null |
    sed -n 's/^\(.*\): test$/\1/p' |
    grep -E "$2"
}

failed=0
total_cases=0
start_all=$(date +%s.%N)
printf '%-58s %10s %10s %12s  %s\n' property cases seconds "cases/s" result
for target in loader_fuzz secrets; do
  # In secrets.rs only the proptest properties; its end-to-end tests do not take a case count.
  filter='.'
  [ "$target" = secrets ] && filter='^(rendering_errors_of_arbitrary_text_never_panics|terminal_rendering_never_shows_a_token)$'
  for property in $(properties "$target" "$filter"); do
    start=$(date +%s.%N)
    if SERVO_FUZZ_CASES="$cases" RUST_BACKTRACE=0 \
      cargo test --release --quiet --test "$target" -- --exact "$property" >"$log" 2>&1; then
      result="0 panics"
    else
      result="FAILED"
      failed=$((failed + 1))
    fi
    end=$(date +%s.%N)
    seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
    printf '%-58s %10d %10.1f %12.0f  %s\n' "$target::$property" "$cases" "$seconds" \
      "$(awk -v n="$cases" -v s="$seconds" 'BEGIN { print n / s }')" "$result"
    total_cases=$((total_cases + cases))
    if [ "$result" = FAILED ]; then
      # proptest prints the minimal failing input and the panic message.
      grep -E 'minimal failing input|panicked at|Test failed' -A3 "$log" | head -40 | sed 's/^/    /'
    fi
  done
done
end_all=$(date +%s.%N)

echo
printf 'total: %d cases in %.1f s; ' "$total_cases" "$(awk -v a="$start_all" -v b="$end_all" 'BEGIN { print b - a }')"
if [ "$failed" -eq 0 ]; then
  echo "0 panics, 0 failures"
else
  echo "$failed propert$([ "$failed" = 1 ] && echo y || echo ies) FAILED"
  exit 1
fi
