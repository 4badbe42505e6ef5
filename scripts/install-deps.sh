#!/usr/bin/env bash
# Installs the Debian packages Neurite needs to build, test and run its demo.
# Installs only what is missing, so a machine that has them all does nothing.
# `install-deps.sh --bench` adds the anchors the benchmarks compare against,
# and what the scripts in tests/golden/ need to write the golden files again;
# `--fuzz` adds clang and libFuzzer for `make fuzz`.
set -euo pipefail

packages=(
  build-essential cmake ccache pkg-config
  libeigen3-dev libtbb-dev libhdf5-dev libyaml-cpp-dev
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libgtest-dev libgmock-dev protobuf-compiler libprotobuf-dev libonnx-dev
  libcli11-dev libfmt-dev nlohmann-json3-dev zlib1g-dev libdnnl-dev
  dataset-fashion-mnist python3-onnx python3-numpy libonnx-testdata
  libopenmpi-dev openmpi-bin
)
# Node.js runs ONNX Runtime (npm onnxruntime-node) in tests; a machine may already
# have its own Node.js outside Debian's packages, whose npm then conflicts.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
# PyTorch is the speed anchor of bench/; without OpenBLAS Debian's PyTorch falls
# back to the reference BLAS and runs matmul 20-80x slower, no fair comparison.
# torchvision's models are exported by tests/golden/make_train_golden.py.
[ "${1:-}" = "--bench" ] && packages+=(python3-torch libopenblas0-openmp python3-torchvision)
# clang with its sanitizer runtimes, and its OpenMP (libomp) for the parts of
# the tree built with OpenMP.
[ "${1:-}" = "--fuzz" ] && packages+=(clang-16 libclang-rt-16-dev libfuzzer-16-dev libomp-16-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
