#!/usr/bin/env bash
# Replaces the vendored Apache ECharts with VERSION from the npm registry: the minified bundle and
# its licence files, unmodified. Prints the package's integrity to record in the vendor README.
set -euo pipefail
version="${1:?usage: scripts/vendor-echarts.sh VERSION}"
cd "$(dirname "$0")/.."
dest=crates/servo/assets/vendor/echarts
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "echarts@$version" >/dev/null && tar xzf "echarts-$version.tgz")
cp "$work/package/dist/echarts.min.js" "$work/package/LICENSE" "$work/package/NOTICE" "$dest/"
cp "$work/package/licenses/LICENSE-d3" "$dest/"
echo "vendored echarts $version; integrity: $(npm view "echarts@$version" dist.integrity)"
echo "update $dest/README.md with the version and integrity"
