#!/usr/bin/env bash
# Fuzzes `servo optimizer serve` with Schemathesis (https://schemathesis.readthedocs.io) against
# the server's own OpenAPI document: every operation gets up to MAX_EXAMPLES generated requests,
# valid and invalid, and every check that applies (`--checks all`: no 5xx, status codes, content
# types, headers and bodies as documented, invalid data rejected, valid data accepted, auth
# enforced). Four runs:
#   1. the right token, paths fixed to the application (bodies reach the protocol handler);
#   2. the right token, any path (names, percent-encoding, other applications: 400/401/404);
#   3. no token; 4. a wrong token (everything but /healthz, /metrics, /openapi.json is 401).
# Before the runs one real `servo run` (the `wait` connector) completes a short study, so that
# `/trials`, `/best` and `/report` answer 200 with data and their bodies are checked too.
# After each run it prints the HTTP statuses the server answered (from its `/metrics`); at the end
# it checks the server is still up and logged no panic. Exit status: 0 only if every run passed.
#
# Usage: benches/schemathesis.sh [MAX_EXAMPLES]          default 200 per operation
#        SERVO_BIN=target/debug/servo benches/schemathesis.sh   (skip the build)
#        SCHEMATHESIS_SEED=1 benches/schemathesis.sh      (repeat a run's generated data)
# Schemathesis goes into a virtualenv cached under target/ (needs python3 >= 3.9 and PyPI once).
# The server is a debug build by default: overflow checks and debug assertions find more.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

max="${1:-200}"
case "$max" in '' | *[!0-9]*) echo "usage: $0 [MAX_EXAMPLES]" >&2; exit 2 ;; esac
version=4.32.5
venv="$PWD/target/schemathesis-$version"
# `.installed` is written last, so an interrupted install is redone rather than half-used.
if [ ! -e "$venv/.installed" ]; then
  echo "== installing schemathesis $version into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
  touch "$venv/.installed"
fi

if [ -n "${SERVO_BIN:-}" ]; then
  servo="$SERVO_BIN"
else
  cargo build --quiet --bin servo
  servo="$PWD/target/debug/servo"
fi

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
# Nothing inherited changes what the server does; logs stay quiet.
for var in $(env | sed -n 's/^\(SERVO_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$var"; done
export NO_COLOR=1 SERVO_LOG_LEVEL=warn

token=schemathesis-token-0123456789abcdef
printf '%s\n' "$token" >"$work/token"
"$servo" optimizer app create acme/web --store "$work/opt.db" --minimize 'main.cpu + time_waited' \
  --trials 5 --duration 10ms --token-file "$work/token" >/dev/null
"$servo" optimizer serve --store "$work/opt.db" --listen 127.0.0.1:0 --sleep 1s \
  >"$work/stdout" 2>"$work/server.log" &
pid=$!
base=""
for _ in $(seq 300); do
  base=$(head -n 1 "$work/stdout" | grep -o 'http://[0-9.:]*' || true)
  [ -n "$base" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$base" ]; then
  echo "the server did not start:" >&2
  cat "$work/server.log" >&2
  exit 1
fi
echo "== server at $base" >&2

cat >"$work/servo.yaml" <<EOF
optimizer: {id: acme/web, token: $token, base_url: "$base"}
wait:
  measure_enabled: true
  duration: 10ms
$(wait_components 1)
EOF
# DESCRIBE, the baseline MEASURE, 4 ADJUST/MEASURE pairs, then the final ADJUST or SLEEP.
timeout 120 "$servo" run -c "$work/servo.yaml" --max-cycles 11 >&2

# Schemathesis reads schemathesis.toml from the working directory up: give it these only.
cat >"$work/fixed.toml" <<'EOF'
[parameters]
"path.org" = "acme"
"path.app" = "web"
EOF
: >"$work/any.toml"

# Requests answered so far, by HTTP status, from the server's own counters.
statuses() {
  curl -s "$base/metrics" | awk '
    /^servo_optimizer_requests_total/ {
      match($0, /status="[0-9]+"/); s = substr($0, RSTART + 8, RLENGTH - 9); n[s] += $NF }
    END { for (s in n) print s, n[s] }' | sort
}

failed=()
run() {
  local name="$1" config="$2"
  shift 2
  echo
  echo "== $name"
  statuses >"$work/before"
  local rc=0
  (cd "$work" && "$venv/bin/st" --config-file "$config" run "$base/openapi.json" \
    --checks all --max-examples "$max" --no-color --workers 1 --request-timeout 10 \
    ${SCHEMATHESIS_SEED:+--seed "$SCHEMATHESIS_SEED"} "$@") >"$work/st.out" 2>&1 || rc=$?
  # The failures and the summary (the progress lines above them say nothing more).
  if grep -Eq '^=+ (FAILURES|WARNINGS|SUMMARY) =+$' "$work/st.out"; then
    awk '/^=+ (FAILURES|WARNINGS|SUMMARY) =+$/ { p = 1 } p && NF' "$work/st.out"
  else
    tail -n 20 "$work/st.out"
  fi
  statuses >"$work/after"
  echo "server answered: $(join -a 2 -e 0 -o 0,1.2,2.2 "$work/before" "$work/after" |
    awk '{ d = $3 - $2; if (d > 0) printf "%s%s: %d", sep, $1, d; sep = ", " }')"
  [ "$rc" -eq 0 ] || failed+=("$name")
}

run "right token, path fixed to acme/web" fixed.toml -H "Authorization: Bearer $token"
run "right token, any path" any.toml -H "Authorization: Bearer $token"
run "no token" fixed.toml
run "wrong token" fixed.toml -H "Authorization: Bearer wrong-token-0123456789abcdef"

echo
if ! kill -0 "$pid" 2>/dev/null; then
  echo "the server died during the runs:" >&2
  tail -n 20 "$work/server.log" >&2
  failed+=("server alive")
elif grep -q 'panicked' "$work/server.log"; then
  echo "the server panicked:" >&2
  grep -A5 'panicked' "$work/server.log" >&2
  failed+=("no panic")
fi
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'schemathesis: FAILED: %s\n' "${failed[*]}"
  exit 1
fi
echo "schemathesis: every run passed ($max examples per operation and run)"
