#!/usr/bin/env bash
# Install everything from scratch (idempotent) and run the whole test suite.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -k dedup -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="test,lint,opencc" bash launch/install.sh   # opencc: the Traditional→Simplified tests
bash launch/install_system.sh   # chromium, slurm, munge, shellcheck: real programs the tests drive
bash tests/lint.sh              # fail fast: ruff, import contracts, shellcheck
# CI=1: a test whose program is missing fails instead of skipping (this script installed them all)
export CI=${CI:-1} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
# pytest keeps only the newest 3 temp folders under $TMPDIR/pytest-of-$USER and prunes the rest, even
# those a concurrent suite of another checkout is using: give each checkout a temp root of its own
PYTEST_DEBUG_TEMPROOT="${TMPDIR:-/tmp}/zh-pretrain-tests-$(pwd | cksum | cut -d' ' -f1)"
mkdir -p "$PYTEST_DEBUG_TEMPROOT"
export PYTEST_DEBUG_TEMPROOT
exec .venv/bin/python -m pytest "$@"
