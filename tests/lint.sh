#!/usr/bin/env bash
# The checks CI runs before the tests (fail fast): ruff lint + format, import contracts, shellcheck.
# Needs the venv with the `lint` extra (tests/run.sh installs it) and the shellcheck program.
set -euo pipefail
cd "$(dirname "$0")/.."
PY_DIRS=(pipeline tokenizer tests benchmarks launch)
echo "[lint] ruff check"
.venv/bin/ruff check "${PY_DIRS[@]}"
echo "[lint] ruff format --check"
.venv/bin/ruff format --check --quiet "${PY_DIRS[@]}"
echo "[lint] import contracts (lint-imports)"
out=$(.venv/bin/lint-imports --no-cache 2>&1) || { echo "$out"; exit 1; }
echo "$out" | grep -E "KEPT|BROKEN"
echo "[lint] shellcheck"
shellcheck slurm/*.sh slurm/*.sbatch launch/*.sh tests/*.sh benchmarks/*.sh .ci/run
echo "[lint] all clean"
