#!/usr/bin/env bash
# Fetch the base encoder, build stance, and label an example article with the
# shipped model (no training). Pass your own article files to label them instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-base-model.sh
cargo build --release --quiet
if [ "$#" -eq 0 ]; then set -- data/examples/iran-campaign-hack.txt; fi
target/release/stance predict --format table "$@"
