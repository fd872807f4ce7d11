#!/usr/bin/env bash
# Runs compute-sanitizer's memcheck, racecheck, synccheck and initcheck over
# `stagefit selftest --all-variants` (every tactic at its shallowest and deepest STAGES, in
# both formats), then memcheck over the memory-safety tests (bad offsets, NaN inputs and a
# mismatched workspace with input checks off: tests/gpu_safety.rs), and prints each summary.
# Usage: scripts/sanitize.sh [path/to/stagefit] [path/to/gpu_safety test binary]
set -uo pipefail
STAGEFIT=${1:-target/release/stagefit}
SAFETY_TESTS=${2:-$(ls -t target/release/deps/gpu_safety-* 2>/dev/null | grep -v '\.d$' | head -1)}
SANITIZER=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)}
status=0
for tool in memcheck racecheck synccheck initcheck; do
  out=$("$SANITIZER" --tool "$tool" --print-limit 10 "$STAGEFIT" selftest --all-variants 2>&1)
  rc=$?
  echo "== $tool (exit $rc)"
  echo "$out" | grep -E "selftest:|ERROR SUMMARY|RACECHECK SUMMARY|FAIL" | head -12
  [ "$rc" -eq 0 ] || status=1
done
if [ -n "$SAFETY_TESTS" ]; then
  out=$("$SANITIZER" --tool memcheck --print-limit 10 "$SAFETY_TESTS" --test-threads=1 2>&1)
  rc=$?
  echo "== memcheck, memory-safety tests (exit $rc)"
  echo "$out" | grep -E "^test |test result|ERROR SUMMARY|panicked" | head -12
  [ "$rc" -eq 0 ] || status=1
else
  echo "== memcheck, memory-safety tests: no gpu_safety test binary (build it with cargo test --release --no-run)"
  status=1
fi
exit $status
