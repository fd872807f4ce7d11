#!/bin/bash
# Session 10 run 5: wgmma v3a (TMA by thread 0, mbarriers) with a 256-row tile (m64n256k16): A/B against v1, correctness.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs5; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
timeout 120 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b --tokens 512,2048,8192 --routing uniform --format mxfp4 --budget device --tactic wgm256n128k64:4,wgm256n128k64:3,wgm128n128k64:4 --timing graph --no-cublas --reps 10 --json $L/ab-new.json > $L/ab-new.txt 2>&1; echo "rc=$?" >> $L/ab-new.txt
timeout 80 $B/stagefit-old bench --preset gpt-oss-20b,gpt-oss-120b --tokens 512,2048,8192 --routing uniform --format mxfp4 --budget device --tactic wgm128n128k64:4 --timing graph --no-cublas --reps 10 --json $L/ab-old.json > $L/ab-old.txt 2>&1; echo "rc=$?" >> $L/ab-old.txt
tar -czf $OUT/logs.tgz -C /tmp logs5
(cd .. && timeout 250 $B/gpu_gemm --test-threads=1 --nocapture every_tactic) > $L/gpu_gemm.txt 2>&1; echo "rc=$?" >> $L/gpu_gemm.txt
tar -czf $OUT/logs.tgz -C /tmp logs5
grep -E "^wgm|test result|rc=|panicked|failures" $L/gpu_gemm.txt | head -14
for f in new old; do grep -E "wgm" $L/ab-$f.txt | awk -F'|' '{print $2,$3,$4,$9,$10,$11,$12,$13}'; done
