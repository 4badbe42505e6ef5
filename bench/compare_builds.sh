#!/usr/bin/env bash
# A refactor's speed check: the engine against ONNX Runtime and training
# steps against PyTorch, for two builds back to back in one run (each with its
# anchor beside it, so the ratios compare across builds even as the VM drifts).
#   bash bench/compare_builds.sh BEFORE_BUILD AFTER_BUILD [THREADS]
set -euo pipefail
before=$1 after=$2 threads=${3:-2}
for build in "$before" "$after"; do
  echo "== $build: the engine against ONNX Runtime 1.17 ($threads threads)"
  /usr/bin/python3 bench/compare_engine.py --build "$build" --threads "$threads" --time 1 --rounds 3
done
for build in "$before" "$after"; do
  echo "== $build: training steps of pruned models against PyTorch ($threads threads)"
  /usr/bin/python3 bench/compare_train.py --build "$build" --threads "$threads" --models mlp,resnet20,transformer \
    --sparsities 0,0.9,0.95
done
