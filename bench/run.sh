#!/usr/bin/env bash
# Runs every benchmark with its anchor in the same run; `make bench` calls it.
# Figures go to standard output; bench/RESULTS.md records them with the machine.
set -euo pipefail
build=${BUILD:-build}
threads=${THREADS:-2}
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$build/bench/bench_peak"
echo "== GEMM (GFLOP/s, median)"
"$build/bench/bench_gemm"
echo "== conv2d forward+backward against PyTorch"
/usr/bin/python3 bench/compare_conv.py --build "$build" --threads "$threads"
echo "== training steps against PyTorch"
/usr/bin/python3 bench/compare_train.py --build "$build" --threads "$threads"
echo "== sparse against dense masked kernels, per layer shape and density"
"$build/bench/bench_sparse" --threads "$threads"
echo "== training steps of pruned models against PyTorch"
for mask in unstructured 4x1; do
  /usr/bin/python3 bench/compare_train.py --build "$build" --threads "$threads" --models mlp,resnet20,transformer \
    --sparsities 0,0.5,0.8,0.9,0.95,0.98 --mask-type "$mask"
done
echo "== inference: the engine against ONNX Runtime 1.17 on the same ONNX files"
/usr/bin/python3 bench/compare_engine.py --build "$build" --threads "1,$threads" --layers
