#!/usr/bin/env bash
# Benchmarks servo's embedded optimizer against Optuna's default TPE sampler and random search on
# the problems of benches/optimizer.rs, and prints a comparison table.
#
#   benches/optimizer.sh [--seeds N] [--first-seed N] [--budget N] [--problems branin,hartmann6,mixed]
#
# Optuna goes into a throwaway virtualenv (needs python3 >= 3.9 and access to PyPI). The JSON
# traces are deleted afterwards unless OPTIMIZER_BENCH_DIR names a directory to keep them in.
# Every run starts from the problem's baseline configuration and lasts the budget (default 100
# trials, the baseline included), long enough to count the trials TPE needs to get within 10%.
set -euo pipefail

cd "$(dirname "$0")/.."
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
out="${OPTIMIZER_BENCH_DIR:-$scratch}"
mkdir -p "$out"

echo "== installing optuna into a throwaway virtualenv" >&2
python3 -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install --quiet --disable-pip-version-check optuna

echo "== servo's Bayesian sampler and random search" >&2
cargo bench -p servo-optimizer --bench optimizer -- --out "$out/servo.json" "$@"

echo "== Optuna TPE" >&2
"$scratch/venv/bin/python" benches/optimizer_optuna.py --out "$out/optuna.json" "$@"

python3 - "$out/servo.json" "$out/optuna.json" <<'EOF'
import json
import math
import statistics
import sys

runs, optimum, budget = [], {}, {}
for path in sys.argv[1:]:
    with open(path) as f:
        document = json.load(f)
    for problem in document["problems"]:
        name = problem["name"]
        if name in optimum and abs(optimum[name] - problem["f_star"]) > 1e-9 * max(1.0, abs(optimum[name])):
            sys.exit(f"{name}: the Rust and Python definitions disagree on the optimum "
                     f"({optimum[name]} vs {problem['f_star']}); fix whichever drifted")
        optimum[name] = problem["f_star"]
        budget[name] = problem["budget"]
    runs.extend(document["runs"])


def regret(trace, trials, f_star):
    best = trace[min(trials, len(trace)) - 1] if trace else None
    return math.inf if best is None else best - f_star


def trials_to_target(trace, f_star, limit):
    """First trial (1-based) within 10% of |f*|, or limit + 1 if never."""
    for i, best in enumerate(trace):
        if best is not None and best - f_star <= 0.1 * abs(f_star):
            return i + 1, True
    return limit + 1, False


def fmt(x, digits=3):
    return "inf" if math.isinf(x) else f"{x:.{digits}f}"


samplers = ["ours", "optuna", "random"]
header = (f"{'problem':<10} {'sampler':<7} {'regret@20':>10} {'regret@50':>10} "
          f"{'trials-to-10%':>14} {'reached':>8} {'failed/run':>11}")
print()
print("median over seeds; regret = best feasible objective - f*; trials count the baseline;")
print("reached = runs that got within 10% of |f*|; failed/run = mean trials that crashed")
print(header)
print("-" * len(header))
for problem in optimum:
    medians = {}
    for sampler in samplers:
        traces = [r["best"] for r in runs if r["problem"] == problem and r["sampler"] == sampler]
        if not traces:
            continue
        f_star, limit = optimum[problem], budget[problem]
        hits = [trials_to_target(t, f_star, limit) for t in traces]
        medians[sampler] = statistics.median(h for h, _ in hits)
        reached = sum(ok for _, ok in hits)
        failed = statistics.mean(
            r.get("failed", 0) for r in runs if r["problem"] == problem and r["sampler"] == sampler
        )
        print(f"{problem:<10} {sampler:<7} "
              f"{fmt(statistics.median(regret(t, 20, f_star) for t in traces)):>10} "
              f"{fmt(statistics.median(regret(t, 50, f_star) for t in traces)):>10} "
              f"{medians[sampler]:>14.1f} {f'{reached}/{len(traces)}':>8} {failed:>11.1f}")
    if "ours" in medians and "optuna" in medians:
        print(f"{problem:<10} ours/optuna trials-to-10%: {medians['ours'] / medians['optuna']:.2f}")
    print()
print(f"runs that never got within 10% count as budget + 1 (= {max(budget.values()) + 1}) trials")
EOF
