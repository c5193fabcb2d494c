#!/usr/bin/env bash
# Build the documentation site and take headless-Chromium screenshots of the home page and the
# command-line reference: docs-home.png and docs-cli.png in OUT (default: site-screenshots/).
# Needs scripts/setup.sh --docs and Debian's chromium package.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-site-screenshots}
mkdir -p "$out"
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
.venv/bin/mkdocs build --strict --quiet -d "$site"
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome) \
  || { echo "docs-screenshot.sh: no chromium on PATH (apt-get install chromium)" >&2; exit 2; }
shoot() {
  "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,900 \
    --screenshot="$out/$2" "file://$site/$1" >/dev/null 2>&1
  echo "$out/$2"
}
shoot index.html docs-home.png
shoot reference/cli/index.html docs-cli.png
