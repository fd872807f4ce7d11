#!/usr/bin/env bash
# Runs compute-sanitizer's memcheck, racecheck, synccheck and initcheck over
# `stagefit selftest --all-variants` (every tactic at its shallowest and deepest STAGES, in
# both formats) and prints each tool's summary. Usage: scripts/sanitize.sh [path/to/stagefit]
set -uo pipefail
STAGEFIT=${1:-target/release/stagefit}
SANITIZER=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)}
status=0
for tool in memcheck racecheck synccheck initcheck; do
  out=$("$SANITIZER" --tool "$tool" --print-limit 10 "$STAGEFIT" selftest --all-variants 2>&1)
  rc=$?
  echo "== $tool (exit $rc)"
  echo "$out" | grep -E "selftest:|ERROR SUMMARY|RACECHECK SUMMARY|FAIL" | head -12
  [ "$rc" -eq 0 ] || status=1
done
exit $status
