#!/usr/bin/env bash
# Installs the build into a temporary prefix, then configures, builds and runs
# an out-of-tree project against it with find_package(Neurite).
set -euo pipefail
build=$1 source=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix/usr" >/dev/null
cmake -S "$source/tests/install/consumer" -B "$prefix/consumer" -DCMAKE_PREFIX_PATH="$prefix/usr" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$prefix/consumer" >/dev/null
"$prefix/consumer/consumer" | grep -q "^consumer: loss [0-9]"
test -x "$prefix/usr/bin/neurite"
echo "installed tree builds and runs a consumer"
