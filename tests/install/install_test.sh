#!/usr/bin/env bash
# Installs the build into a temporary prefix, then configures, builds and runs
# an out-of-tree project against it with find_package(Neurite), and the same
# program built with pkg-config. Run by `make test` on the static build and by
# .ci/run on a shared one (BUILD_SHARED_LIBS=ON).
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
# Without CMake: the same program through pkg-config.
PKG_CONFIG_PATH="$prefix/usr/lib/pkgconfig:$prefix/usr/lib/x86_64-linux-gnu/pkgconfig" \
  g++ -std=c++20 -O1 "$source/tests/install/consumer/main.cpp" -o "$prefix/consumer-pc" \
  $(PKG_CONFIG_PATH="$prefix/usr/lib/pkgconfig:$prefix/usr/lib/x86_64-linux-gnu/pkgconfig" pkg-config --cflags --libs neurite)
LD_LIBRARY_PATH="$prefix/usr/lib" "$prefix/consumer-pc" | grep -q "^consumer: loss [0-9]"
# The recipe library and the documentation are installed.
test -f "$prefix/usr/share/neurite/recipes/gmp90_transfer.yaml"
test -f "$prefix/usr/share/doc/Neurite/recipes.md"
echo "installed tree builds and runs a consumer"
