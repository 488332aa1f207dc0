#!/usr/bin/env bash
# Compares servo's native vegeta engine with wrk, both in max-rate mode with
# the same number of connections for the same duration, against the same
# local servers: the project's hyper server (connectors/examples/hello_server.rs)
# and nginx (Debian's nginx-light, started here on loopback with its own
# config and prefix in a temporary directory, stopped at the end). Prints
# requests/s, p99 latency and client CPU time per request of each tool, and
# the ratios; goal: the engine reaches >= 1.0x wrk's requests/s at <= 1.0x its
# CPU per request.
#
# On a shared machine requests/s mostly measures how much CPU each tool got,
# so the tools alternate for ROUNDS rounds; each tool's best and median round
# are printed, with the client CPU time per request (user + system, less
# load-dependent; median of the rounds).
#
# Usage: benches/vegeta-vs-wrk.sh
# Environment: DURATION (seconds, default 5), CONNECTIONS (default 10),
#   ROUNDS (default 3), WRK_THREADS (default 2), SERVER_THREADS (default 2:
#   hello_server's threads and nginx's worker processes), SERVERS (default
#   "hello nginx"), BEFORE (optional: another build of the `attack` example,
#   run in the same rounds as a third tool, to compare two versions of the
#   engine side by side; it gets the open-loop run too), PACED_RATE (default
#   10000: requests/s of the open-loop run that follows the rounds on each
#   server).
# Needs wrk and nginx (apt-get install -y wrk nginx-light) and python3.
set -euo pipefail

DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-10}
ROUNDS=${ROUNDS:-3}
WRK_THREADS=${WRK_THREADS:-2}
SERVER_THREADS=${SERVER_THREADS:-2}
SERVERS=${SERVERS:-hello nginx}
BEFORE=${BEFORE:-}
PACED_RATE=${PACED_RATE:-10000}

cd "$(dirname "$0")/.."
for tool in wrk python3 cargo; do
    if ! command -v "$tool" >/dev/null; then
        echo "vegeta-vs-wrk: $tool is required (wrk: apt-get install -y wrk)" >&2
        exit 1
    fi
done
nginx=$(command -v nginx || echo /usr/sbin/nginx)
if [[ " $SERVERS " == *" nginx "* && ! -x $nginx ]]; then
    echo "vegeta-vs-wrk: nginx is required (apt-get install -y nginx-light), or set SERVERS=hello" >&2
    exit 1
fi
if [[ -n $BEFORE && ! -x $BEFORE ]]; then
    echo "vegeta-vs-wrk: BEFORE=$BEFORE is not an executable" >&2
    exit 1
fi

# The `dist` profile is the shipped binary's (see Cargo.toml); its engine ran as fast or faster
# than a `release` build's in the same rounds.
cargo build --profile dist -j 1 -p servo-connectors --example hello_server --example attack >&2
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
examples="$target_dir/dist/examples"

work=$(mktemp -d)
server_pid=
stop_server() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
cleanup() {
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT

# Waits until $1 (host:port) accepts connections.
wait_for_port() {
    python3 - "$1" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
for _ in range(100):
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}

# Starts the server named $1; sets server_pid and url.
start_server() {
    case $1 in
    hello)
        "$examples/hello_server" --threads "$SERVER_THREADS" >"$work/hello.out" &
        server_pid=$!
        for _ in $(seq 50); do
            grep -qs '^listening on ' "$work/hello.out" && break
            sleep 0.1
        done
        url="$(sed -n 's/^listening on //p' "$work/hello.out")/"
        ;;
    nginx)
        local prefix="$work/nginx" port
        mkdir -p "$prefix"
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        # Run as root (CI), the master would hand its workers to `nobody`
        # anyway; say so, with Debian's group, rather than rely on a default
        # group that Debian does not have.
        local user=""
        if [[ $(id -u) == 0 ]]; then user="user nobody nogroup;"; fi
        cat >"$prefix/nginx.conf" <<EOF
$user
daemon off;
worker_processes $SERVER_THREADS;
pid $prefix/nginx.pid;
error_log $prefix/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $prefix/body;
    proxy_temp_path $prefix/proxy;
    fastcgi_temp_path $prefix/fastcgi;
    uwsgi_temp_path $prefix/uwsgi;
    scgi_temp_path $prefix/scgi;
    # Keep connections for the whole run, as hello_server does.
    keepalive_requests 100000000;
    server {
        # One listening socket per worker, so the kernel spreads the 10
        # connections over both: on a shared socket the worker that won the
        # accepts sometimes took all 10, and that round ran at about 96,000
        # requests/s against 125,000-140,000 whatever the client.
        listen 127.0.0.1:$port reuseport;
        location / { return 200 "Hello, World!"; }
    }
}
EOF
        "$nginx" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" &
        server_pid=$!
        url="http://127.0.0.1:$port/"
        if ! wait_for_port "127.0.0.1:$port"; then
            cat "$prefix/error.log" >&2 || true
            url=/
        fi
        ;;
    *)
        echo "vegeta-vs-wrk: unknown server \"$1\" in SERVERS (hello, nginx)" >&2
        exit 1
        ;;
    esac
    if [[ $url == / ]]; then
        echo "vegeta-vs-wrk: $1 did not start" >&2
        exit 1
    fi
}

# wrk prints latencies as 1.23us / 4.56ms / 7.89s; convert to milliseconds.
wrk_p99_ms() {
    awk '$1 == "99%" { v = $2; u = v; gsub(/[0-9.]/, "", u); sub(/[a-z]+$/, "", v);
        f = (u == "us") ? 0.001 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1; printf "%.3f", v * f }'
}

# CPU microseconds per request from a `time` line ("user system") and a count.
cpu_per_request() {
    awk -v n="$2" '{ printf "%.2f", ($1 + $2) * 1e6 / n }' "$1"
}

# Runs the engine binary $1 against $url; prints "requests/s p99-ms CPU-us/request".
run_engine() {
    { time "$1" "$url" --rate max --workers "$CONNECTIONS" --connections "$CONNECTIONS" \
        --duration "${DURATION}s" >"$work/engine.json" 2>/dev/null; } 2>"$work/engine.time"
    local rps p99 requests failed
    read -r rps p99 requests failed < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("%.2f %.3f %d %d" % (r["throughput"], r["latency"]["p99"] * 1000, r["requests"], r["requests"] - r["successes"]))
' "$work/engine.json")
    if [[ $failed != 0 ]]; then
        echo "vegeta-vs-wrk: $failed of the engine's requests failed" >&2
    fi
    echo "$rps $p99 $(cpu_per_request "$work/engine.time" "$requests")"
}

TIMEFORMAT='%3U %3S'
for server in $SERVERS; do
    start_server "$server"
    echo "$server: $url   connections: $CONNECTIONS   duration: ${DURATION}s   rounds: $ROUNDS   load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    : >"$work/rounds"
    for round in $(seq "$ROUNDS"); do
        { time wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency "$url" >"$work/wrk.out"; } 2>"$work/wrk.time"
        wrk_rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk.out")
        wrk_p99=$(wrk_p99_ms <"$work/wrk.out")
        wrk_cpu=$(cpu_per_request "$work/wrk.time" "$(awk '/ requests in / { print $1 }' "$work/wrk.out")")
        read -r ours_rps ours_p99 ours_cpu < <(run_engine "$examples/attack")
        line="round $round: wrk $(printf '%7.0f req/s p99 %7.3f ms %5.2f us CPU/req' "$wrk_rps" "$wrk_p99" "$wrk_cpu")"
        line+=" | engine $(printf '%7.0f req/s p99 %7.3f ms %5.2f us CPU/req' "$ours_rps" "$ours_p99" "$ours_cpu")"
        before="0 0 0"
        if [[ -n $BEFORE ]]; then
            before=$(run_engine "$BEFORE")
            read -r b_rps b_p99 b_cpu <<<"$before"
            line+=" | before $(printf '%7.0f req/s p99 %7.3f ms %5.2f us CPU/req' "$b_rps" "$b_p99" "$b_cpu")"
        fi
        echo "$line" >&2
        echo "$wrk_rps $wrk_p99 $wrk_cpu $ours_rps $ours_p99 $ours_cpu $before" >>"$work/rounds"
    done
    # Open-loop pacing at a fixed rate: how closely the send times follow the
    # schedule (vegeta's rate: requests over the time from the first to the
    # last one sent) and the latencies, measured from the scheduled times.
    paced_tools="engine:$examples/attack"
    if [[ -n $BEFORE ]]; then paced_tools+=" before:$BEFORE"; fi
    for tool in $paced_tools; do
        "${tool#*:}" "$url" --rate "$PACED_RATE/1s" --workers "$CONNECTIONS" \
            --connections "$CONNECTIONS" --duration "${DURATION}s" >"$work/paced.json" 2>/dev/null
        python3 - "$work/paced.json" "$server" "$PACED_RATE" "$DURATION" "${tool%%:*}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
server, rate, duration, tool = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
scheduled = rate * duration
# The schedule's own send-time rate: `scheduled` requests, the last one due
# at (scheduled - 1) / rate seconds.
schedule_rate = scheduled / ((scheduled - 1) / rate)
l = r["latency"]
print(f"{server}: {tool} paced {rate}/s for {duration}s: {r['requests']} requests (schedule {scheduled}, unsent {r['unsent']}), "
      f"send rate {r['rate']:.1f}/s ({(r['rate'] - schedule_rate) / schedule_rate * 100:+.3f}% from the schedule), "
      f"latency from the scheduled time p50 {l['p50'] * 1000:.3f} ms, p99 {l['p99'] * 1000:.3f} ms, max {l['max'] * 1000:.3f} ms")
PY
    done
    stop_server

    python3 - "$work/rounds" "$server" "$( [[ -n $BEFORE ]] && echo 1 || echo 0)" <<'PY'
import statistics, sys
rounds = [list(map(float, line.split())) for line in open(sys.argv[1])]
server, with_before = sys.argv[2], sys.argv[3] == "1"
def figures(at):  # best and median round's requests/s, best's p99; median CPU per request
    best, p99 = max((r[at], r[at + 1]) for r in rounds)
    median = statistics.median(r[at] for r in rounds)
    return best, median, p99, statistics.median(r[at + 2] for r in rounds)
tools = [("wrk", figures(0)), ("engine", figures(3))] + ([("before", figures(6))] if with_before else [])
print(f"{server}: {'tool':<8} {'best req/s':>11} {'median req/s':>13} {'p99 (ms)':>10} {'CPU us/request':>15}")
for name, (best, median, p99, cpu) in tools:
    print(f"{server}: {name:<8} {best:>11.0f} {median:>13.0f} {p99:>10.3f} {cpu:>15.2f}")
wrk = tools[0][1]
for name, (best, median, p99, cpu) in tools[1:]:
    ok = best >= wrk[0] and median >= wrk[1] and cpu <= wrk[3]
    print(f"{server}: {name}/wrk: requests/s {best / wrk[0]:.2f}x best, {median / wrk[1]:.2f}x median; "
          f"CPU per request {cpu / wrk[3]:.2f}x (goal >= 1.0x and <= 1.0x: {'met' if ok else 'NOT met'}), "
          f"p99 {p99 / wrk[2] if wrk[2] else 0:.2f}x")
PY
done
