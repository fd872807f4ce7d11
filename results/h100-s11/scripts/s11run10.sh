#!/bin/bash
# Session 11 run 10: compute-sanitizer over every variant of the final v15 build (selftest
# --all-variants: every tactic at its shallowest and deepest STAGES, both formats), racecheck and
# memcheck first, then synccheck and the memory-safety tests under memcheck as time allows.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs10; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
S=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in racecheck memcheck synccheck; do
  timeout 240 $S --tool $tool --print-limit 10 $B/stagefit selftest --all-variants > $L/san-$tool.txt 2>&1; echo "rc=$?" >> $L/san-$tool.txt
  echo "$tool: $(grep -E 'selftest:|ERROR SUMMARY|RACECHECK SUMMARY' $L/san-$tool.txt | tr '\n' ' ') $(tail -1 $L/san-$tool.txt)" | tee -a $L/summary.txt
  tar -czf $OUT/logs.tgz -C /tmp logs10
done
(cd .. && timeout 120 $S --tool memcheck --print-limit 10 $B/gpu_safety --test-threads=1) > $L/san-safety.txt 2>&1; echo "rc=$?" >> $L/san-safety.txt
echo "safety memcheck: $(grep -E 'test result|ERROR SUMMARY' $L/san-safety.txt | tr '\n' ' ') $(tail -1 $L/san-safety.txt)" | tee -a $L/summary.txt
tar -czf $OUT/logs.tgz -C /tmp logs10
