#!/usr/bin/env bash
# Soak run: `servo run` (release build) for many short trials, sampling the servo process' resident
# memory (VmRSS, /proc/PID/status) and open file descriptors (/proc/PID/fd) at the start, every
# INTERVAL seconds, and at the end, then saying whether both stayed flat (goal: no growth beyond
# noise: a leak of even one allocation or descriptor per trial shows over thousands of trials).
# RSS that grows is then told apart from the trial history the study legitimately keeps in memory
# by restarting servo on the same journal (the history is reloaded; a leak is not).
#
# The study is the `wait` connector (no application: an in-memory component, so every trial costs
# servo's own machinery only — describe, adjust, measure, journal) with `control.duration: 1ms` and
# `algorithm: random`. Random search keeps the optimizer's per-trial cost and state flat: the
# default Bayesian optimizer fits a Gaussian process to the whole history, whose memory and CPU grow
# with every trial by design (O(n²) memory, O(n³) time), which would hide a leak in legitimate
# growth and turn a 2000-trial soak into hours of linear algebra on a shared 2-core machine.
#
# Usage: benches/soak.sh [TRIALS] [INTERVAL]        defaults: 2000 trials, sample every 2 s
#        SERVO_BIN=target/release/servo benches/soak.sh   (skip the build)
# Build parallelism follows CARGO_BUILD_JOBS (set it to 1 on a shared machine).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

trials="${1:-2000}"
interval="${2:-2}"
case "$trials" in '' | *[!0-9]*) echo "usage: $0 [TRIALS] [INTERVAL]" >&2; exit 2 ;; esac

# SERVO_BIN: a release binary already built (e.g. by `cargo test --release`, whose feature set
# differs from a plain `cargo build --bin servo` and so costs a second build of the framework).
if [ -n "${SERVO_BIN:-}" ]; then
  servo="$SERVO_BIN"
else
  cargo build --release --quiet --bin servo
  servo="$PWD/target/release/servo"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/servo.yaml" <<EOF
name: soak
optimizer:
  trials: $trials
  seed: 1
  algorithm: random
  objective: { minimize: main.cpu * 2 + main.memory }
  constraints: [ time_waited < 1s ]
  on_finish: keep
  control: { duration: 1ms }
wait:
  measure_enabled: true
$(wait_components 2)
EOF

python3 - "$servo" "$work" "$trials" "$interval" <<'PY'
import os, signal, subprocess, sys, time

servo, work, trials, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}
env["NO_COLOR"] = "1"
log_path = os.path.join(work, "servo.log")

def status(pid):
    """VmRSS and VmHWM in KiB, and thread count, from /proc/PID/status (None once it exited)."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.split()[0] if value.split() else ""
        fds = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, ProcessLookupError):
        return None
    if fields.get("State", "").startswith("Z"):
        return None
    return int(fields["VmRSS"]), int(fields["VmHWM"]), int(fields["Threads"]), len(fds)

def fd_targets(pid):
    out = []
    try:
        for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
            try:
                out.append(f"{fd}->{os.readlink(f'/proc/{pid}/fd/{fd}')}")
            except OSError:
                pass
    except OSError:
        pass
    return out

def finished_trials():
    # One JSON log line per finished trial; the log is servo's stderr.
    try:
        with open(log_path, "rb") as f:
            return f.read().count(b'"trial finished"')
    except FileNotFoundError:
        return 0

log = open(log_path, "wb")
start = time.monotonic()
proc = subprocess.Popen(
    [servo, "run", "-c", os.path.join(work, "servo.yaml"), "--log-format", "json", "--log-level", "info"],
    stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=work,
)
samples = []  # (seconds, trials done, rss KiB, hwm KiB, threads, fds)
first_fds = last_fds = None
try:
    # The first sample as soon as the process has started its runtime (it has a status at once).
    next_at = start
    while True:
        now = time.monotonic()
        if now >= next_at:
            s = status(proc.pid)
            if s is None:
                break
            samples.append((now - start, finished_trials(), *s))
            targets = fd_targets(proc.pid)
            first_fds = first_fds or targets
            last_fds = targets or last_fds
            next_at = now + (0.2 if len(samples) < 3 else interval)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    code = proc.wait(timeout=max(60, trials * 0.5))
except BaseException:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    raise
finally:
    log.close()
elapsed = time.monotonic() - start
done = finished_trials()

print(f"servo run: {done} trials finished of {trials} in {elapsed:.1f} s "
      f"({done / elapsed:.0f} trials/s), exit {code}; journal "
      f"{os.path.getsize(os.path.join(work, '.servo', 'soak.db')) / 1024:.0f} KiB")
print(f"{'t (s)':>7} {'trials':>7} {'RSS (MiB)':>10} {'peak (MiB)':>11} {'threads':>8} {'fds':>5}")
for t, n, rss, hwm, threads, fds in samples:
    print(f"{t:>7.1f} {n:>7} {rss / 1024:>10.1f} {hwm / 1024:>11.1f} {threads:>8} {fds:>5}")

if len(samples) < 4:
    print("too few samples to judge: run more trials (or a shorter interval)")
    sys.exit(1)

# Judge from the first sample after warm-up (10% of the trials: allocator pools, the journal's
# page cache, the tokio runtime's threads reach their working size) to the last sample.
warm = next((s for s in samples if s[1] >= trials * 0.1), samples[1])
last = samples[-1]
span_trials = max(last[1] - warm[1], 1)
rss_growth = (last[2] - warm[2]) / 1024
per_1000 = (last[2] - warm[2]) / span_trials * 1000
fd_growth = last[5] - warm[5]
# Noise: the allocator returns and takes pages in chunks; 2 MiB or 5% of the working set.
rss_flat = rss_growth <= max(2.0, warm[2] / 1024 * 0.05)
fds_flat = fd_growth <= 0
print()
print(f"from trial {warm[1]} (t={warm[0]:.1f}s) to trial {last[1]} (t={last[0]:.1f}s):")
print(f"  RSS {warm[2] / 1024:.1f} -> {last[2] / 1024:.1f} MiB ({rss_growth:+.2f} MiB, "
      f"{per_1000:+.0f} KiB per 1000 trials): {'flat' if rss_flat else 'GROWING'}")
print(f"  open fds {warm[5]} -> {last[5]} ({fd_growth:+d}): {'flat' if fds_flat else 'GROWING'}")
print(f"  threads {warm[4]} -> {last[4]}")
if not fds_flat:
    print("  fds open at the end that were not at the start:")
    for line in sorted(set(last_fds) - set(first_fds or [])):
        print(f"    new: {line}")

# Growth that is state rather than a leak: the study keeps every trial in memory (the sampler's
# history, the summary), and a restarted servo reloads them all from the journal. So restart it on
# the same journal for a few more trials: if it starts at (or above) the RSS the first run ended
# with, the growth is the reloaded history; a leak would not survive the restart.
retained = False
if not rss_flat:
    config = os.path.join(work, "servo.yaml")
    more = trials + max(trials // 10, 20)
    with open(config) as f:
        text = f.read().replace(f"trials: {trials}", f"trials: {more}")
    with open(config, "w") as f:
        f.write(text)
    resumed = subprocess.Popen([servo, "run", "-c", config, "--log-level", "warn"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=work)
    early = []
    while resumed.poll() is None and len(early) < 10:
        s = status(resumed.pid)
        if s is not None:
            early.append(s[0])
        time.sleep(0.1)
    resumed.wait(timeout=max(60, trials * 0.5))
    resumed_rss = max(early, default=0) / 1024
    retained = resumed_rss >= last[2] / 1024 - max(2.0, warm[2] / 1024 * 0.05)
    print(f"  resumed on the same journal ({done} trials reloaded): RSS {resumed_rss:.1f} MiB within "
          f"{len(early) * 0.1:.1f} s of starting, vs {warm[2] / 1024:.1f} MiB for a fresh study at trial {warm[1]}: "
          + ("the growth is the trial history the study holds, not a leak" if retained
             else "LEAK SUSPECTED: a restart sheds the growth"))
sys.exit(0 if (rss_flat or retained) and fds_flat and code == 0 else 1)
PY
