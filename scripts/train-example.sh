#!/usr/bin/env bash
# End to end on the project's data: fetch the base encoder, fine-tune it on the
# corpus train split (model selection on dev), label the example article, and
# score the new checkpoint on the test split, with the shipped model's recipe
# and seed. About 2 minutes on 2 cores once built (the first build takes about 10).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-models/my-stance}
scripts/fetch-base-model.sh minilm
cargo build --release --quiet
target/release/stance train --train data/stance.train.jsonl --dev data/stance.dev.jsonl \
  --base models/all-MiniLM-L6-v2 --out "$out" --method top --train-layers 2 --lr 1e-4 --epochs 4 --seed 44 --patience 2
target/release/stance predict --model "$out" --format table data/examples/iran-campaign-hack.txt
target/release/stance eval --model "$out" --data data/stance.test.jsonl
