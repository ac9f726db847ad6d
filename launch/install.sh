#!/usr/bin/env bash
# Create ./.venv and install the project into it. Safe to re-run: fast when up to date.
#
#   bash launch/install.sh                 # CPU build of torch (default: torch==2.13.0)
#   TORCH_SPEC="torch==2.5.1" TORCH_INDEX_URL=<your CUDA wheel index> bash launch/install.sh
#   EXTRAS="test,opencc" bash launch/install.sh
#
# torch goes in first and alone: pip then sees it as satisfied and never replaces it with
# a multi-GB CUDA build while resolving deepspeed/transformers.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-test}

if [ ! -x "$VENV/bin/python" ]; then
    echo "[install] creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "[install] ${TORCH_SPEC:-torch==2.13.0}"
    "${PIP[@]}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "${TORCH_SPEC:-torch==2.13.0}" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi
echo "[install] project + dependencies (extras: ${EXTRAS})"
"${PIP[@]}" -c launch/constraints.txt -e ".[${EXTRAS}]" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
echo "[install] ready: $("$VENV/bin/python" -c 'import torch, deepspeed, transformers; print(f"torch {torch.__version__}, deepspeed {deepspeed.__version__}, transformers {transformers.__version__}")' 2>/dev/null)"
