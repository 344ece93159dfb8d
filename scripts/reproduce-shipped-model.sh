#!/usr/bin/env bash
# Rebuild the shipped model from the corpora and the recorded command (see
# models/README.md), then check that the weights come out bit for bit the
# same (sha256 of model.safetensors). Needs ../shared/realnews (or
# STANCE_REALNEWS) for the real-news corpus. Takes about 40 minutes on two
# threads; not run in CI. The bits depend on the CPU's kernels: expect
# `identical` on the machine kind that trained it (models/README.md), and
# with the training step that trained it: since 392578a the native step
# runs a sentence head's last layer for each [CLS] alone, which sums in
# another order (ten MPNet steps: 182 of 21.9 M f16 values one ulp apart).
# For the bits, run this script from a checkout of 4eee8a4:
#   git worktree add ../stance-4eee8a4 4eee8a4 && ../stance-4eee8a4/scripts/reproduce-shipped-model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-base-model.sh mpnet
cargo build --release --quiet
# The corpus as the shipped model was trained and chosen on it: annotation
# rounds 1-2 (round 3 added dev articles, round 4 training articles, later).
real=data/real/build/round2
target/release/stance data real-build --root "${STANCE_REALNEWS:-../shared/realnews}" --out-dir $real --max-round 2
out=$(mktemp -d)/stance-mpnet
trap 'rm -rf "$(dirname "$out")"' EXIT
# The exact command that produced models/stance-mpnet.
target/release/stance --threads 2 train --train data/stance.train.jsonl $real/real.train.jsonl \
  --dev $real/real.dev.jsonl --base models/all-mpnet-base-v2 --out "$out" \
  --method top --train-layers 3 --context 0 --lr 5e-5 --epochs 3 --patience 2 --seed 43 --delta \
  --base-id sentence-transformers/all-mpnet-base-v2 --base-revision e8c3b32edf5434bc2275fc9bab85f82640a19130
want=$(sha256sum models/stance-mpnet/model.safetensors | cut -d' ' -f1)
got=$(sha256sum "$out/model.safetensors" | cut -d' ' -f1)
echo "shipped:    $want"
echo "retrained:  $got"
if [ "$want" = "$got" ]; then echo "identical"; else echo "DIFFERENT" >&2; exit 1; fi
