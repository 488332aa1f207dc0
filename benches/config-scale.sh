#!/usr/bin/env bash
# Prints how long `servo validate` takes on configs with many alias mounts (goal: < 100 ms at 1000
# mounts, linear in mounts) and the peak RSS of `servo --help` (goal: < 15 MB).
# Usage: benches/config-scale.sh            (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin servo
servo="$PWD/target/release/servo"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$servo" "$work" <<'PY'
import os, resource, statistics, subprocess, sys, time

servo, work = sys.argv[1], sys.argv[2]
env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}

def config(mounts):
    path = os.path.join(work, f"mounts-{mounts}.yaml")
    with open(path, "w") as f:
        f.write("connectors:\n")
        for i in range(mounts):
            f.write(f"  mount-{i:05}: wait\n")
        for i in range(mounts):
            f.write(f"mount-{i:05}:\n  measure_enabled: true\n  duration: {i % 60 + 1}s\n")
    return path

def median_ms(args, runs=7):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env=env)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)

# First child of this process, so RUSAGE_CHILDREN's peak is its own.
subprocess.run([servo, "--help"], check=True, stdout=subprocess.DEVNULL, env=env)
rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"peak RSS of `servo --help`: {rss_kib / 1024:.1f} MiB (goal < 15)")
print(f"`servo --help` wall time: {median_ms([servo, '--help']):.1f} ms (median of 7)")

print(f"{'mounts':>7} {'validate (ms)':>14} {'µs per mount':>13}")
for mounts in (10, 100, 500, 1000, 2000):
    ms = median_ms([servo, "validate", "-c", config(mounts)])
    print(f"{mounts:>7} {ms:>14.1f} {ms * 1000 / mounts:>13.1f}")

PY
