#!/usr/bin/env bash
# Run every benchmark on the GPU in one go (a few minutes on a recent GPU), for docs/BENCHMARKS.md.
# Needs the MNIST folds: python partition_mnist.py --source FOLDER
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
$PYTHON benchmarks/bench_scoring.py --device cuda --train-epochs 2
$PYTHON benchmarks/bench_training.py --device cuda
$PYTHON benchmarks/bench_memory.py --device cuda
