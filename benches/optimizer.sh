#!/usr/bin/env bash
# Benchmarks servo's embedded optimizer against Optuna's TPE and GP samplers and random search, and
# prints the figures (see crates/optimizer/benches/optimizer/SUITE.md for the suites and protocol).
#
#   benches/optimizer.sh [--suite held-out|tuning|all] [--seeds N] [--budget N] [--problems a,b]
#                        [--anchors tpe,gp] [--gp-budget N]
#
# Optuna (pinned below, with the scipy and torch GPSampler needs) goes into a throwaway virtualenv
# (python3 >= 3.9 and access to PyPI); set OPTIMIZER_BENCH_VENV to reuse one. Traces are deleted
# afterwards unless OPTIMIZER_BENCH_DIR names a directory to keep them in. GPSampler costs about a
# minute per 50-trial run on two cores, so it runs a shorter budget (--gp-budget, default 50).
set -euo pipefail

OPTUNA_VERSION=5.1.0
SCIPY_VERSION=1.17.1
TORCH_VERSION=2.15.0
GREENLET_VERSION=3.2.4

suite=held-out seeds=10 budget=100 gp_budget=50 anchors=tpe,gp problems=""
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suite="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --budget) budget="$2"; shift 2 ;;
    --gp-budget) gp_budget="$2"; shift 2 ;;
    --anchors) anchors="$2"; shift 2 ;;
    --problems) problems="$2"; shift 2 ;;
    *) echo "optimizer.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
out="${OPTIMIZER_BENCH_DIR:-$scratch}"
mkdir -p "$out"
select=(--suite "$suite")
[ -n "$problems" ] && select=(--problems "$problems")

venv="${OPTIMIZER_BENCH_VENV:-$scratch/venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "== installing optuna $OPTUNA_VERSION into a throwaway virtualenv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "optuna==$OPTUNA_VERSION" \
    "scipy==$SCIPY_VERSION" "torch==$TORCH_VERSION" "greenlet==$GREENLET_VERSION"
fi

echo "== servo's Bayesian sampler and random search" >&2
cargo bench -p servo-optimizer --bench optimizer -- --out "$out/servo.json" \
  "${select[@]}" --seeds "$seeds" --budget "$budget"
bench="$(cargo bench -p servo-optimizer --bench optimizer --no-run --message-format=json 2>/dev/null \
  | "$venv/bin/python" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "optimizer" and m.get("executable"):
        print(m["executable"])')"

traces=("$out/servo.json")
for anchor in ${anchors//,/ }; do
  b="$budget"; [ "$anchor" = gp ] && b="$gp_budget"
  echo "== Optuna $anchor ($b trials)" >&2
  OMP_NUM_THREADS=1 "$venv/bin/python" benches/optimizer_optuna.py --bench "$bench" \
    --out "$out/optuna-$anchor.json" "${select[@]}" --seeds "$seeds" --budget "$b" --samplers "$anchor"
  traces+=("$out/optuna-$anchor.json")
done

python3 benches/optimizer_figures.py "${traces[@]}"
