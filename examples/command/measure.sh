#!/bin/sh
# servo's measure hook: measures for SERVO_MEASURE_DURATION seconds, then prints
#   {"metrics": {NAME: {"value": NUMBER, "unit": UNIT}}, "annotations": {...}}
# Halfway it prints the readings so far on a line of their own,
#   {"progress": 50, "metrics": {...}}
# so that `servo run` can stop a trial whose readings already break an SLO badly.
# The pretend service gets faster with more workers (up to contention) and with a better cache.
set -eu
# The values the config declares, until adjust.sh writes the state file.
workers=8
cache=none
if [ -f "$STATE_FILE" ]; then . "$STATE_FILE"; fi
# Prints the readings, as a progress report when given its percentage.
readings() {
  awk -v w="$workers" -v c="$cache" -v progress="${1:-}" 'BEGIN {
    speedup = (c == "lfu") ? 1.6 : (c == "lru") ? 1.4 : 1.0
    latency = 400 / (w ^ 0.7 * speedup) + 1.5 * w
    throughput = 50 * w ^ 0.8 * speedup
    printf "{"
    if (progress != "") printf "\"progress\": %d, ", progress
    printf "\"metrics\": {\"latency_p99\": {\"value\": %.3f, \"unit\": \"ms\"}, ", latency
    printf "\"throughput\": {\"value\": %.3f, \"unit\": \"rps\"}}", throughput
    if (progress == "") printf ", \"annotations\": {\"workers\": \"%d\", \"cache\": \"%s\"}", w, c
    printf "}\n"
  }'
}
half=$(awk -v d="$SERVO_MEASURE_DURATION" 'BEGIN { print d / 2 }')
sleep "$half"
readings 50
sleep "$half"
readings
