#!/usr/bin/env bash
# Installs ONNX Runtime 1.17 for Node.js (npm onnxruntime-node, which carries its
# CPU library inside the package) into DIR/onnxruntime, once. Tests and
# benchmarks run the same ONNX files in it beside Neurite.
#   scripts/fetch-onnxruntime.sh build
set -euo pipefail
dir=${1:?usage: fetch-onnxruntime.sh BUILD_DIR}/onnxruntime
[ -f "$dir/node_modules/onnxruntime-node/package.json" ] && exit 0
mkdir -p "$dir"
# --ignore-scripts: its install script would download a GPU build; the CPU library is in the package.
(cd "$dir" && npm install --ignore-scripts --no-audit --no-fund --silent onnxruntime-node@1.17.0 >/dev/null)
