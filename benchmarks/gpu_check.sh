#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): one prepared run for a maintainer with a GPU, at most
# ~8 minutes on one GPU; exits non-zero when a check fails. On a CPU: benchmarks/gpu_check.sh --small
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export TQDM_DISABLE=1
exec "$PY" benchmarks/gpu_check.py "$@"
