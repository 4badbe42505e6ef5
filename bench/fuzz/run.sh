#!/usr/bin/env bash
# Runs each fuzz target of a `make fuzz` build for RUNS executions or SECONDS,
# whichever comes first, starting from tests/fuzz/corpus/<target>/ (seeds and
# past findings); the corpus grows in BUILD/fuzz/corpus/<target>/. Findings
# (crash-*, leak-*, oom-*, timeout-*) land in BUILD/fuzz/findings/<target>/:
# each, once fixed, is copied into tests/fuzz/corpus/<target>/ for `make test`
# to replay. Prints one line per target: executions, seconds, findings.
#   bash bench/fuzz/run.sh BUILD [RUNS [SECONDS [TARGET...]]]
set -uo pipefail
build=$1 runs=${2:-1000000} seconds=${3:-1800}
shift $(( $# < 3 ? $# : 3 ))
here=$(cd "$(dirname "$0")/../.." && pwd)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(recipe onnx checkpoint h5_data idx npy image)

# Leaks inside third-party libraries that keep memory until exit are not ours.
export LSAN_OPTIONS=suppressions=$here/tests/sanitizers/lsan.supp
export ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer-16 || command -v llvm-symbolizer || true)
# HDF5 reads sizes from a damaged file's metadata and mallocs them; it copes
# with a NULL from malloc (an error, which Neurite reports), so ASan returns
# NULL as a release build's malloc does instead of stopping there. Neurite's
# own allocations use operator new, which then throws std::bad_alloc: a
# finding all the same.
export ASAN_OPTIONS=allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMP_NUM_THREADS=1
for t in "${targets[@]}"; do
  corpus=$build/fuzz/corpus/$t findings=$build/fuzz/findings/$t log=$build/fuzz/$t.log
  mkdir -p "$corpus" "$findings"
  # Fork mode: jobs in child processes, going on past a finding so that one
  # run collects them all. -rss_limit_mb also caps every single allocation: a
  # size read from a file that was not checked before allocating is a finding.
  start=$SECONDS
  "$build/bench/fuzz/fuzz_$t" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 -runs="$runs" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -artifact_prefix="$findings/" \
    "$corpus" "$here/tests/fuzz/corpus/$t" > "$log" 2>&1
  code=$?
  secs=$((SECONDS - start))
  last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1)
  execs=$(echo "$last" | grep -oE '^#[0-9]+' | tr -d '#')
  cov=$(echo "$last" | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+')
  counts=$(echo "$last" | grep -oE 'oom/timeout/crash: [0-9/]+' | cut -d' ' -f2)
  echo "$t: ${execs:-?} executions in $secs s, coverage ${cov:-?}, oom/timeout/crash ${counts:-?}, exit $code," \
       "findings kept: $(ls "$findings" | wc -l)"
done
