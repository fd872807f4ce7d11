#!/bin/bash
# Session 12 run 4: compute-sanitizer on a captured two-layer decode step (route_small at batch 1,
# the multi-kernel routing at batch 8; early down weights on).
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs4; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
for tool in memcheck racecheck synccheck; do
  for b in 1 8; do
    timeout 100 compute-sanitizer --tool $tool --error-exitcode 9 $B/moe-demo --preset gpt-oss-20b --layers 2 --batch $b --prompt-tokens 16 --decode-steps 3 > $L/sanitize-$tool-b$b.txt 2>&1
    echo "sanitize $tool b$b: rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $L/sanitize-$tool-b$b.txt | tail -1)" | tee -a $L/tests.txt
    tar -czf $OUT/logs.tgz -C /tmp logs4
  done
done
