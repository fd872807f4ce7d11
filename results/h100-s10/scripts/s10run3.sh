#!/bin/bash
# Session 10 run 3: wgmma v3 with a producer warp — correctness smoke and A/B against v1.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs3; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
tar -czf $OUT/logs.tgz -C /tmp logs3
for v in new old; do
  bin=$B/stagefit; [ $v = old ] && bin=$B/stagefit-old
  timeout 100 $bin bench --preset gpt-oss-20b,gpt-oss-120b --tokens 512,2048,8192 --routing uniform --format mxfp4 --budget device --tactic wgm128n128k64:4,wgm64n128k64:6 --timing graph --no-cublas --reps 10 --json $L/ab-$v.json > $L/ab-$v.txt 2>&1; echo "rc=$?" >> $L/ab-$v.txt
  tail -2 $L/ab-$v.txt
done
tar -czf $OUT/logs.tgz -C /tmp logs3
(cd .. && timeout 250 $B/gpu_gemm --test-threads=1 --nocapture every_tactic) > $L/gpu_gemm.txt 2>&1; echo "rc=$?" >> $L/gpu_gemm.txt
tar -czf $OUT/logs.tgz -C /tmp logs3
grep -E "^wgm|test result|rc=|panicked|failures" $L/gpu_gemm.txt | head -12
grep -E "wgm" $L/ab-new.txt | head -30
grep -E "wgm" $L/ab-old.txt | head -30
