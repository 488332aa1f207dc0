#!/usr/bin/env bash
# The test command of the README: installs what the tests need when it is missing, then runs every
# test of the workspace. Starts nothing globally: tests start their own servers on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests run for real: prometheus (the prometheus connector's server), postgresql
# (the optimizer server's shared store: tests/postgres.rs starts throwaway clusters), python3 and
# python3-venv (a throwaway venv holding the real ServoX, for tests/servox_interop.rs), chromium and
# chromium-driver (a headless browser for the web UI and report, tests/ui.rs).
packages=(prometheus postgresql python3 python3-venv chromium chromium-driver)
need_apt=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  if [[ " ${need_apt[*]} " == *" postgresql "* ]]; then
    # As the official postgres image does: no system-wide "main" cluster started on port 5432.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql-common
    $SUDO sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
      /etc/postgresql-common/createcluster.conf
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
