#!/usr/bin/env bash
# The device check, for the day a GPU is lent (< 8 min on an H100/H200 class GPU):
#   bash benchmarks/gpu_check.sh [--out DIR] [--steps 200] [...]   # see benchmarks/gpu_check.py --help
#   bash benchmarks/gpu_check.sh --cpu --out /tmp/gpu-check        # dry run: CPU build, tiny model
#
# Installs the CUDA build of the same torch version into the venv (unless it is there already),
# then runs benchmarks/gpu_check.py: generate + prepare a corpus, train gpt2-small-zh in bf16 on
# one GPU (eager / fused AdamW / compile / both), checkpoint save/load, bitwise resume, one-GPU-
# per-task binding. Results: OUT/gpu_check.json and OUT/gpu_check.md (docs/benchmarks.md#gpu-check).
# Network: the package registries only (PyPI, or TORCH_INDEX_URL).
#
#   TORCH_INDEX_URL  where the CUDA wheel comes from (default: PyPI, whose Linux x86_64 torch
#                    wheel is the CUDA build; e.g. https://download.pytorch.org/whl/cu128 for another CUDA)
#   VENV             the virtual environment (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

dry_run=
for arg in "$@"; do
    case "$arg" in --cpu | --dry-run) dry_run=1 ;; esac
done

[ -x "$PY" ] || VENV="$VENV" bash launch/install.sh
if [ -z "$dry_run" ] && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.version.cuda else 1)' 2>/dev/null; then
    # Same version as installed (launch/install.sh pins it), CUDA build instead of the CPU one.
    version=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')
    echo "[gpu_check] replacing torch $version (CPU build) by its CUDA build"
    # --force-reinstall: "torch==2.13.0" is already satisfied by 2.13.0+cpu in pip's eyes
    "$PY" -m pip install --quiet --disable-pip-version-check --force-reinstall \
        ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==$version"
    "$PY" -c 'import torch; assert torch.version.cuda, "still a CPU build"; print("[gpu_check] torch", torch.__version__, "CUDA", torch.version.cuda)'
fi
exec "$PY" benchmarks/gpu_check.py "$@"
