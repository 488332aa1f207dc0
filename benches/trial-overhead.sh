#!/usr/bin/env bash
# A trial's own overhead in `servo run` (release build): the time between the end of one
# measurement and the start of the next adjustment — scoring, journaling the result, the
# embedded Bayesian optimizer's suggestion, journaling the new trial as running, and the loop
# around them. The application is the `wait` connector with in-memory components and a 1 ms
# measurement, so a trial costs servo's own machinery only. Goal: < 20 ms per trial at 100 trials.
#
# The figures come from servo itself: before each adjustment the study logs, at debug level,
# `trial overhead` with the time since the last measurement ended (`overhead_ms`) and its two
# known parts (`suggest_ms`: the optimizer; `journal_ms`: the durable commits of the result and
# of the next trial). As a cross-check from outside, the journal's timestamps (`servo trials -o
# json`) give finished_at of one trial to started_at of the next, which misses the new trial's
# commit (started_at is taken inside it).
#
# Usage: benches/trial-overhead.sh [TRIALS] [ALGORITHM]     defaults: 100 trials, bayesian
#        SERVO_BIN=target/release/servo benches/trial-overhead.sh   (skip the build)
# Build parallelism follows CARGO_BUILD_JOBS (set it to 1 on a shared machine).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

trials="${1:-100}"
algorithm="${2:-bayesian}"
case "$trials" in '' | *[!0-9]*) echo "usage: $0 [TRIALS] [bayesian|random]" >&2; exit 2 ;; esac
case "$algorithm" in bayesian | random) ;; *) echo "usage: $0 [TRIALS] [bayesian|random]" >&2; exit 2 ;; esac

if [ -n "${SERVO_BIN:-}" ]; then
  servo="$SERVO_BIN"
  unset SERVO_BIN # servo reads SERVO_* variables as config
else
  cargo build --release --quiet --bin servo
  servo="$PWD/target/release/servo"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Two SLOs, as a real study has: the constraint models are part of every suggestion's cost.
cat >"$work/servo.yaml" <<EOF
name: overhead
optimizer:
  trials: $trials
  seed: 1
  algorithm: $algorithm
  objective: { minimize: main.cpu * 2 + main.memory }
  constraints: [ time_waited < 1s, main.replicas * main.cpu < 12 ]
  confirm: 0
  on_finish: keep
  control: { duration: 1ms }
wait:
  measure_enabled: true
$(wait_components 2)
EOF

start=$(date +%s.%N)
env -u SERVO_LOG_LEVEL NO_COLOR=1 "$servo" run -c "$work/servo.yaml" --no-checks \
  --log-format json --log-level 'warn,servo::study=debug' >/dev/null 2>"$work/servo.log" || {
  echo "servo run failed:" >&2
  tail -20 "$work/servo.log" >&2
  exit 1
}
end=$(date +%s.%N)
"$servo" trials -c "$work/servo.yaml" -o json >"$work/trials.json"

python3 - "$work/servo.log" "$work/trials.json" "$trials" "$algorithm" "$start" "$end" <<'PY'
import json, sys

log_path, trials_path, wanted, algorithm = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
elapsed = float(sys.argv[6]) - float(sys.argv[5])

rows = {}  # trial number -> (overhead, suggest, journal) in ms
with open(log_path) as f:
    for line in f:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        fields = event.get("fields", {})
        if fields.get("message") == "trial overhead":
            rows[int(fields["trial"])] = (
                float(fields["overhead_ms"]), float(fields["suggest_ms"]), float(fields["journal_ms"])
            )
with open(trials_path) as f:
    trials = json.load(f)

if not rows:
    print("no `trial overhead` events in the log: is this servo older than the benchmark?")
    sys.exit(1)

def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]

def line(label, values):
    return (f"  {label:<22} median {pct(values, 0.5):7.2f}  p90 {pct(values, 0.9):7.2f}  "
            f"max {max(values):7.2f}")

overhead = [r[0] for r in rows.values()]
suggest = [r[1] for r in rows.values()]
journal = [r[2] for r in rows.values()]
rest = [r[0] - r[1] - r[2] for r in rows.values()]
gaps = [
    (b["started_at"] - a["finished_at"]) * 1e3
    for a, b in zip(trials, trials[1:])
    if a.get("finished_at") is not None
]
print(f"servo run, {algorithm}, {len(trials)} trials journaled of {wanted} in {elapsed:.1f} s; "
      f"overhead per trial in ms (trial 0 is the baseline, so {len(rows)} gaps)")
print(line("overhead", overhead))
print(line("  suggestion", suggest))
print(line("  journal commits", journal))
print(line("  the rest (loop, score)", rest))
if gaps:
    print(line("journal gap (outside)", gaps))
for n in (10, 50, 100):
    # Trials are numbered from 0 (the baseline): the n-th trial's suggestion saw n - 1 results.
    if n - 1 in rows:
        o, s, j = rows[n - 1]
        print(f"  before trial {n:>3}: {o:7.2f} (suggestion {s:7.2f}, journal {j:5.2f})")
last = rows[max(rows)][0]
ok = pct(overhead, 0.5) < 20 and last < 20
print(f"goal (< 20 ms per trial, the last one included): {'met' if ok else 'not met'}")
PY
