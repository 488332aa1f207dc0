#!/bin/sh
# servo's measure hook: measures for SERVO_MEASURE_DURATION seconds, then prints
#   {"metrics": {NAME: {"value": NUMBER, "unit": UNIT}}, "annotations": {...}}
# The pretend service gets faster with more workers (up to contention) and with a better cache.
set -eu
# The values the config declares, until adjust.sh writes the state file.
workers=8
cache=none
if [ -f "$STATE_FILE" ]; then . "$STATE_FILE"; fi
sleep "$SERVO_MEASURE_DURATION"
awk -v w="$workers" -v c="$cache" 'BEGIN {
  speedup = (c == "lfu") ? 1.6 : (c == "lru") ? 1.4 : 1.0
  latency = 400 / (w ^ 0.7 * speedup) + 1.5 * w
  throughput = 50 * w ^ 0.8 * speedup
  printf "{\"metrics\": {\"latency_p99\": {\"value\": %.3f, \"unit\": \"ms\"}, ", latency
  printf "\"throughput\": {\"value\": %.3f, \"unit\": \"rps\"}}, ", throughput
  printf "\"annotations\": {\"workers\": \"%d\", \"cache\": \"%s\"}}\n", w, c
}'
