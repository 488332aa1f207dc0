#!/usr/bin/env bash
# Screenshots of the optimizer server's fleet and application pages and of a report, taken by the
# UI tests in headless Chromium (installed by scripts/test.sh), written to DIR (default
# target/ui-screenshots) to look at. Not committed; the README's images are small copies.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$(realpath -m "${1:-target/ui-screenshots}")"
mkdir -p "$dir"
SERVO_UI_SCREENSHOTS="$dir" cargo nextest run --test ui --no-fail-fast
ls -l "$dir"
