#!/usr/bin/env bash
# Replays each finding of a `make fuzz` run once and prints where it fails:
# the sanitizer's verdict and the first frame outside the sanitizer and
# libFuzzer (a frame in a third-party library says whose bug it is).
#   bash bench/fuzz/triage.sh BUILD TARGET
set -uo pipefail
build=$1 target=$2
export ASAN_OPTIONS=allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 OMP_NUM_THREADS=1
export ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer-16 || command -v llvm-symbolizer || true)
for f in "$build"/fuzz/findings/"$target"/*; do
  out=$(timeout 120 "$build/bench/fuzz/fuzz_$target" -rss_limit_mb=2048 -timeout=20 "$f" 2>&1)
  verdict=$(echo "$out" | grep -oE 'ERROR: [A-Za-z]+: [a-z-]+|runtime error: [^:]*|terminate called.*|what\(\): .*' | head -1)
  frame=$(echo "$out" | grep -E '^ +#[0-9]+ ' | grep -vE 'sanitizer|fuzzer::|libc\.so|libstdc\+\+|__asan|__ubsan|asan_|malloc|free|operator new|raise|abort|pthread_kill|__cxa|terminate|memcpy|memmove|strdup|basic_string|_M_construct' \
          | head -1 | sed -E 's/^ +#[0-9]+ 0x[0-9a-f]+ (in )?//; s#\(/[^ ]*/([^/ +]+)\+0x[0-9a-f]+\).*#[\1]#; s/ \(BuildId.*//' | cut -c1-110)
  echo "$(basename "$f") | ${verdict:-no failure now} | ${frame:-?}"
done
