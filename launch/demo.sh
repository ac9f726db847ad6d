#!/usr/bin/env bash
# The product end to end on the embedded demo corpus, on a fresh machine (2 CPU cores, no GPU):
#   install → generate the messy demo corpus → prepare (clean, dedup, split, tokenizer, pack)
#   → train the tiny GPT with 2 ranks under `deepspeed`, interrupted once by SIGUSR1 and
#   resumed → held-out perplexity vs the unigram baseline → sample continuations → reports.
# Everything lands in ./demo/ (DEMO_DIR=... to move it). Re-running starts the run over.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR=${DEMO_DIR:-demo}
DATA="$DEMO_DIR/data"
RUN="$DEMO_DIR/run"
PY=.venv/bin/python
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export PATH="$PWD/.venv/bin:$PATH"   # the deepspeed launcher starts ranks with this python

bash launch/install.sh

echo; echo "== 1/6 demo corpus → $DEMO_DIR/corpus"
[ -f "$DEMO_DIR/corpus/generation.json" ] || $PY -m pipeline generate-corpus --output "$DEMO_DIR/corpus" --size 8MB --seed 0

echo; echo "== 2/6 prepare → $DATA"
$PY -m pipeline prepare --input "$DEMO_DIR/corpus/**/*.csv*" --output "$DATA" --config configs/data/demo.yaml

echo; echo "== 3/6 pretrain the tiny model: deepspeed, 2 ranks, ZeRO-2 (interrupted once, then resumed) → $RUN"
rm -rf "$RUN"
# a free port, not deepspeed's default 29500: two demos (or a demo and a test) on one machine would collide
PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TRAIN=(deepspeed --num_gpus 2 --master_port "$PORT" launch/pretrain.py --config configs/train/tiny-cpu.yaml --data "$DATA" --output "$RUN" export_at_end=true)
"${TRAIN[@]}" > "$DEMO_DIR/train-1.log" 2>&1 &
launcher=$!
# Preempt it as SLURM would: SIGUSR1 to rank 0 once 60 steps are logged. The ranks agree at
# the next step boundary, save a checkpoint and exit 75 ("preempted, resume me").
# No time cap: on a loaded machine 60 steps can take many minutes; the loop ends with the run.
while kill -0 "$launcher" 2>/dev/null; do
    if grep -q '"step": 60,' "$RUN/metrics.jsonl" 2>/dev/null; then
        pkill -USR1 -f -- "launch/pretrain.py --local_rank=0 .*--output $RUN( |\$)" || true   # this run's rank 0 only
        break
    fi
    sleep 0.5
done
set +e; wait "$launcher"; code=$?; set -e
grep -E "^\[(train|eval|checkpoint|stop)" "$DEMO_DIR/train-1.log" | tail -4 || true
echo "-- first run exited with code $code (75 = preempted, checkpoint saved); starting again, it resumes by itself:"
"${TRAIN[@]}" > "$DEMO_DIR/train-2.log" 2>&1 || { tail -30 "$DEMO_DIR/train-2.log"; exit 1; }
grep -E "^\[(train\] resuming|eval|train\] finished|export)" "$DEMO_DIR/train-2.log" | tail -8 || true

echo; echo "== 4/6 held-out perplexity of the exported model vs the unigram baseline"
$PY -m pipeline evaluate --model "$RUN/hf" --data "$DATA" --quiet --output "$RUN/eval.json" > /dev/null
$PY - "$RUN/eval.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
model, unigram = r["perplexity"], r["unigram"]["perplexity"]
print(f"→ the model's held-out perplexity is {unigram / model:.1f}x lower than the unigram baseline of the same tokens")
if not model < unigram / 2:
    sys.exit("the model is not far below the unigram baseline: training went wrong")
PYEOF

echo; echo "== 5/6 continuations of Chinese prompts (sampling, seed 1)"
for prompt in "今天" "中国的历史" "科学家发现"; do
    $PY -m pipeline generate --model "$RUN/hf" --prompt "$prompt" --max-new-tokens 40 --top-k 20 --temperature 0.8 --seed 1
    echo
done

echo; echo "== 6/6 reports"
$PY -m pipeline report --output "$DATA"
$PY -m pipeline report --run "$RUN"

cat <<EOF

Done. Everything is in $DEMO_DIR/:
  corpus/          the generated messy CSV corpus (generation.json says what was planted)
  data/            prepared data: manifest.json, report.json, report.md + report/*.png, tokenizer/, train/, validation/
  run/             the training run: checkpoints/, hf/ (Hugging Face model), metrics.jsonl, tb/, report.md + report/*.png, eval.json
Next:
  .venv/bin/python -m pipeline generate --model $RUN/hf --interactive      # try prompts
  .venv/bin/python -m pipeline chat --model $RUN/hf --port 8000            # chat page on http://127.0.0.1:8000
  .venv/bin/tensorboard --logdir $RUN/tb                                 # curves
  README.md "Your own corpus" — the same steps on your CSV files
EOF
