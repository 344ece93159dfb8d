#!/usr/bin/env bash
# Regenerate docs/html-view.png, the README's picture of the HTML view: the
# shipped model on the seed article, `stance predict --format html`, shot by
# headless chromium (apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-base-model.sh
cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
target/release/stance predict --format html data/examples/iran-campaign-hack.txt -o "$tmp/view.html"
chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars \
  --window-size=1000,1250 --screenshot="$tmp/view.png" "file://$tmp/view.html" 2>/dev/null
mv "$tmp/view.png" docs/html-view.png
echo "wrote docs/html-view.png" >&2
