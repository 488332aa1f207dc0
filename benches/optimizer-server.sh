#!/usr/bin/env bash
# Load benchmark of `servo optimizer serve` (release build): 100 applications in a fresh store and
# 100 concurrent simulated servos, one per application, speaking the protocol over loopback until
# every study is done or the time is up; prints requests/s, p50/p90/p99 latency of WHATS_NEXT and
# of every request, trials completed per second and the server's resident memory. The load
# program is benches/optimizer_server.rs (its doc comment says what it simulates and checks).
#
# Usage: benches/optimizer-server.sh [--postgres] [-- BENCH ARGS]
#   e.g. benches/optimizer-server.sh -- --apps 100 --trials 20 --time 20s --algorithm random
#   benches/optimizer-server.sh -- --scrape 10   also scrapes /metrics 10 times a second (a Prometheus)
#   benches/optimizer-server.sh --postgres -- --replicas 2   two servers on the same database
#   --postgres   run against a throwaway PostgreSQL cluster (Debian package `postgresql`) instead
#                of a SQLite file; it lives in a temporary directory and is removed afterwards.
# Build parallelism follows CARGO_BUILD_JOBS (set it to 1 on a shared machine).
set -euo pipefail
cd "$(dirname "$0")/.."

postgres=false
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) postgres=true; shift ;;
    --) shift; break ;;
    *) echo "usage: $0 [--postgres] [-- BENCH ARGS]" >&2; exit 2 ;;
  esac
done

# The bench profile is the release profile; cargo builds the `servo` binary beside the bench
# (the bench finds it through CARGO_BIN_EXE_servo), so one build serves both.
cargo bench --quiet --bench optimizer_server --no-run

store=()
if $postgres; then
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bin" ]; then
    echo "PostgreSQL is not installed: apt-get install -y --no-install-recommends postgresql" >&2
    exit 1
  fi
  cluster=$(mktemp -d)
  pg_pid=""
  stop_cluster() {
    if [ -n "$pg_pid" ]; then
      kill -INT "$pg_pid" 2>/dev/null || true # fast shutdown
      wait "$pg_pid" 2>/dev/null || true
    fi
    rm -rf "$cluster"
  }
  trap stop_cluster EXIT
  # PostgreSQL refuses to run as root; CI runs as root, so the cluster belongs to the `postgres`
  # user the package creates. setpriv execs (runuser would fork and not pass SIGINT on), so
  # $pg_pid is the postmaster itself and the trap's SIGINT is its fast shutdown.
  as_owner=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$cluster"
    as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${as_owner[@]}" "$bin/initdb" --pgdata "$cluster/data" --auth trust --username postgres \
    --no-sync >/dev/null
  "${as_owner[@]}" "$bin/postgres" -D "$cluster/data" -k "$cluster" -p "$port" \
    -c listen_addresses=127.0.0.1 >"$cluster/log" 2>&1 &
  pg_pid=$!
  ready=false
  for _ in $(seq 100); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then ready=true; break; fi
    sleep 0.1
  done
  if ! $ready; then
    echo "PostgreSQL did not start:" >&2
    cat "$cluster/log" >&2
    exit 1
  fi
  "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres bench
  store=(--store "postgres://postgres@127.0.0.1:$port/bench")
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (fsync on, as in production)" >&2
fi

cargo bench --quiet --bench optimizer_server -- "${store[@]}" "$@"
