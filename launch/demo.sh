#!/usr/bin/env bash
# The product end to end on the embedded demo corpus, on a fresh machine:
#   install → generate the demo corpus → prepare (clean, dedup, split, tokenizer, pack)
# Everything lands in ./demo/ (override with DEMO_DIR=...).
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR=${DEMO_DIR:-demo}
PY=.venv/bin/python
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

bash launch/install.sh

echo; echo "== 1. demo corpus: $DEMO_DIR/corpus"
[ -f "$DEMO_DIR/corpus/generation.json" ] || $PY -m pipeline generate-corpus --output "$DEMO_DIR/corpus" --size 8MB --seed 0

echo; echo "== 2. prepare: $DEMO_DIR/data"
$PY -m pipeline prepare --input "$DEMO_DIR/corpus/**/*.csv*" --output "$DEMO_DIR/data" --config configs/data/demo.yaml

echo
echo "Done. Prepared data: $DEMO_DIR/data (manifest.json, report.json, tokenizer/, train/, validation/)"
echo "Next: python -m pipeline status --output $DEMO_DIR/data   |   see README.md for training"
