#!/usr/bin/env bash
# Prints how long one-shot commands take on the examples (goal: `validate`, `config`, `schema` and
# `--help` each <= 3 ms): the fastest and the median of RUNS runs each. BEFORE=<another servo
# binary> times it in the same rounds, alternating, for a side-by-side comparison.
# Usage: benches/cli-latency.sh            (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin servo
python3 - "$PWD/target/release/servo" "${BEFORE:-}" "${RUNS:-30}" <<'PY'
import os, statistics, subprocess, sys, time

servo, before, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
binaries = {"now": servo} | ({"before": before} if before else {})
env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}
cases = [["--help"]] + [
    [command, "-c", f"examples/{example}.yaml"]
    for command in ("validate", "config", "schema")
    for example in ("quickstart", "vegeta", "prometheus", "kubernetes")
]
times = {}
for _ in range(runs):
    for args in cases:
        for name, binary in binaries.items():
            start = time.perf_counter()
            subprocess.run([binary] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            times.setdefault((" ".join(args), name), []).append((time.perf_counter() - start) * 1000)
print(f"load average {os.getloadavg()[0]:.1f}; fastest / median of {runs} runs, ms")
for args in cases:
    label = " ".join(args)
    cells = [f"{name} {min(times[(label, name)]):5.2f} / {statistics.median(times[(label, name)]):5.2f}" for name in binaries]
    print(f"{label:42s} " + "   ".join(cells))
PY
