#!/usr/bin/env bash
# The main job (make demo): pretrain `cnn` on Fashion-MNIST once, transfer it
# to MNIST digits three times -- dense, pruned to 90 % by the shipped GMP
# recipe, and pruned to 90 % then trained quantisation-aware to 8 bits -- then
# export each to ONNX, benchmark them in the engine (tensor columns
# and layer mode) and print a summary. Runs are kept in $WORK (default build/demo); the
# pretrained base is reused when it is already there.
set -euo pipefail
build=${BUILD:-build}
work=${WORK:-$build/demo}
threads=${THREADS:-0}
bench_batch=${BENCH_BATCH:-64}
neurite="$build/neurite"
mkdir -p "$work"
start=$(date +%s)

seconds_of() { sed -n 's/.*"seconds": \([0-9.]*\).*/\1/p' "$1/summary.json" | head -1; }
top1_of() { "$neurite" eval "$1/checkpoint.h5" --data mnist-digits --json --threads "$threads" |
  sed -n 's/.*"top1":\([0-9.e-]*\).*/\1/p'; }
sparsity_of() { "$neurite" info "$1/checkpoint.h5" --json | tr -d ' \n' |
  sed -n 's/.*"total":{[^}]*"sparsity":\([0-9.e-]*\).*/\1/p'; }

if [ -f "$work/base/summary.json" ]; then
  echo "== base: reusing $work/base (cnn pretrained on Fashion-MNIST)"
else
  echo "== base: pretraining cnn on Fashion-MNIST (3 epochs)"
  rm -rf "$work/base"
  "$neurite" train cnn --data fashion-mnist --epochs 3 --batch-size 128 --threads "$threads" --out "$work/base"
fi

echo "== dense transfer to MNIST digits (5 epochs)"
rm -rf "$work/dense"
"$neurite" train cnn --data mnist-digits --init "$work/base/checkpoint.h5" --epochs 5 --batch-size 64 \
  --lr 0.02 --threads "$threads" --out "$work/dense"

echo "== sparse transfer to MNIST digits (recipes/library/gmp90_transfer.yaml)"
rm -rf "$work/sparse"
"$neurite" train cnn --data mnist-digits --init "$work/base/checkpoint.h5" --batch-size 64 \
  --recipe recipes/library/gmp90_transfer.yaml --threads "$threads" --out "$work/sparse"

echo "== sparse INT8 transfer to MNIST digits (recipes/library/gmp90_quant_transfer.yaml)"
rm -rf "$work/sparse-int8"
"$neurite" train cnn --data mnist-digits --init "$work/base/checkpoint.h5" --batch-size 64 \
  --recipe recipes/library/gmp90_quant_transfer.yaml --threads "$threads" --out "$work/sparse-int8"

echo
echo "== per-layer sparsity of the sparse model"
"$neurite" info "$work/sparse/checkpoint.h5"
echo
echo "== export to ONNX and benchmark in the engine (batch $bench_batch, columns and layer mode)"
declare -A columns layers
for run in dense sparse sparse-int8; do
  "$neurite" export "$work/$run/checkpoint.h5" --out "$work/$run/model.onnx"
  for mode in columns layers; do
    ips=$("$neurite" bench "$work/$run/model.onnx" --batch-size "$bench_batch" --threads "$threads" --time 3 \
      --mode "$mode" --onnxruntime off --json | sed -n 's/.*"items_per_sec":\([0-9.e+-]*\).*/\1/p')
    if [ "$mode" = columns ]; then columns[$run]=$ips; else layers[$run]=$ips; fi
    printf "%s, %s mode: %.0f items/s\n" "$run" "$mode" "$ips"
  done
done
echo
echo "== summary: cnn, Fashion-MNIST -> MNIST digits (2,000 test digits)"
printf "%-11s %10s %12s %10s %14s %14s %10s\n" run "top-1" sparsity "train s" "engine it/s" "layers it/s" "x dense"
for run in dense sparse sparse-int8; do
  awk -v run="$run" -v top1="$(top1_of "$work/$run")" -v sparsity="$(sparsity_of "$work/$run")" \
    -v secs="$(seconds_of "$work/$run")" -v cols="${columns[$run]}" -v lays="${layers[$run]}" \
    -v dense="${columns[dense]}" 'BEGIN { printf "%-11s %9.2f%% %11.1f%% %10.0f %14.0f %14.0f %9.2fx\n",
      run, 100 * top1, 100 * sparsity, secs, cols, lays, cols / dense }'
done
echo "curves: $work/dense/curves.svg, $work/sparse/curves.svg, $work/sparse-int8/curves.svg; demo took $(( $(date +%s) - start )) s"
