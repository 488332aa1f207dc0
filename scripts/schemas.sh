#!/usr/bin/env bash
# Regenerates schemas/: the all-connectors schema and one file per connector.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin servo
servo=target/debug/servo
rm -f schemas/*.schema.json
mkdir -p schemas
"$servo" schema --all --output schemas/servo.schema.json
for name in $("$servo" connectors -o json | python3 -c 'import json,sys; print(" ".join(c["name"] for c in json.load(sys.stdin)))'); do
  "$servo" schema --connector "$name" --output "schemas/$name.schema.json"
done
