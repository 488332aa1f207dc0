#!/usr/bin/env bash
# Compares servo's native vegeta engine with wrk, both in max-rate mode with
# the same number of connections for the same duration, against the same local
# hyper server (connectors/examples/hello_server.rs). Prints requests/s and p99
# latency of each tool and the ratios; goal: the engine reaches >= 0.8x wrk's
# requests/s.
#
# On a shared machine requests/s mostly measures how much CPU each tool got,
# so the tools alternate for ROUNDS rounds, the best round of each counts, and
# the client CPU time per request (user + system, load-independent) is printed
# as well.
#
# Usage: benches/vegeta-vs-wrk.sh
# Environment: DURATION (seconds, default 5), CONNECTIONS (default 10),
#   ROUNDS (default 3), WRK_THREADS (default 2), SERVER_THREADS (default 2).
# Needs wrk (apt-get install -y wrk) and python3 (to read the JSON report).
set -euo pipefail

DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-10}
ROUNDS=${ROUNDS:-3}
WRK_THREADS=${WRK_THREADS:-2}
SERVER_THREADS=${SERVER_THREADS:-2}

cd "$(dirname "$0")/.."
for tool in wrk python3 cargo; do
    if ! command -v "$tool" >/dev/null; then
        echo "vegeta-vs-wrk: $tool is required (wrk: apt-get install -y wrk)" >&2
        exit 1
    fi
done

cargo build --release -j 1 -p servo-connectors --example hello_server --example attack >&2
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
examples="$target_dir/release/examples"

work=$(mktemp -d)
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

"$examples/hello_server" --threads "$SERVER_THREADS" >"$work/server.out" &
server_pid=$!
for _ in $(seq 50); do
    grep -q '^listening on ' "$work/server.out" && break
    sleep 0.1
done
url="$(sed -n 's/^listening on //p' "$work/server.out")/"
if [[ $url == / ]]; then
    echo "vegeta-vs-wrk: hello_server did not start" >&2
    exit 1
fi

# wrk prints latencies as 1.23us / 4.56ms / 7.89s; convert to milliseconds.
wrk_p99_ms() {
    awk '$1 == "99%" { v = $2; u = v; gsub(/[0-9.]/, "", u); sub(/[a-z]+$/, "", v);
        f = (u == "us") ? 0.001 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1; printf "%.3f", v * f }'
}

# CPU microseconds per request from a `time` line ("user system") and a count.
cpu_per_request() {
    awk -v n="$2" '{ printf "%.2f", ($1 + $2) * 1e6 / n }' "$1"
}

TIMEFORMAT='%3U %3S'
echo "server: $url   connections: $CONNECTIONS   duration: ${DURATION}s   rounds: $ROUNDS" >&2
: >"$work/rounds"
for round in $(seq "$ROUNDS"); do
    { time wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency "$url" >"$work/wrk.out"; } 2>"$work/wrk.time"
    wrk_rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk.out")
    wrk_p99=$(wrk_p99_ms <"$work/wrk.out")
    wrk_cpu=$(cpu_per_request "$work/wrk.time" "$(awk '/ requests in / { print $1 }' "$work/wrk.out")")

    { time "$examples/attack" "$url" --rate max --workers "$CONNECTIONS" --connections "$CONNECTIONS" \
        --duration "${DURATION}s" >"$work/ours.json" 2>/dev/null; } 2>"$work/ours.time"
    read -r ours_rps ours_p99 ours_requests ours_failed < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("%.2f %.3f %d %d" % (r["throughput"], r["latency"]["p99"] * 1000, r["requests"], r["requests"] - r["successes"]))
' "$work/ours.json")
    ours_cpu=$(cpu_per_request "$work/ours.time" "$ours_requests")
    if [[ $ours_failed != 0 ]]; then
        echo "vegeta-vs-wrk: $ours_failed of the engine's requests failed" >&2
    fi
    printf 'round %d: wrk %8.0f req/s  p99 %8.3f ms  %6.2f us CPU/req | engine %8.0f req/s  p99 %8.3f ms  %6.2f us CPU/req\n' \
        "$round" "$wrk_rps" "$wrk_p99" "$wrk_cpu" "$ours_rps" "$ours_p99" "$ours_cpu" >&2
    echo "$wrk_rps $wrk_p99 $wrk_cpu $ours_rps $ours_p99 $ours_cpu" >>"$work/rounds"
done

python3 - "$work/rounds" <<'PY'
import statistics, sys
rounds = [list(map(float, line.split())) for line in open(sys.argv[1])]
def best(rps, p99):  # the round with the most requests/s, with its p99
    return max(((r[rps], r[p99]) for r in rounds))
wrk_rps, wrk_p99 = best(0, 1)
ours_rps, ours_p99 = best(3, 4)
wrk_cpu = statistics.median(r[2] for r in rounds)
ours_cpu = statistics.median(r[5] for r in rounds)
print(f"{'tool':<8} {'requests/s':>12} {'p99 (ms)':>10} {'CPU us/request':>15}")
print(f"{'wrk':<8} {wrk_rps:>12.0f} {wrk_p99:>10.3f} {wrk_cpu:>15.2f}")
print(f"{'engine':<8} {ours_rps:>12.0f} {ours_p99:>10.3f} {ours_cpu:>15.2f}")
ratio = ours_rps / wrk_rps
print(f"engine/wrk: requests/s {ratio:.2f}x (goal >= 0.80x: {'met' if ratio >= 0.8 else 'NOT met'}), "
      f"p99 {ours_p99 / wrk_p99 if wrk_p99 else 0:.2f}x, CPU per request {ours_cpu / wrk_cpu:.2f}x")
PY
