#!/bin/bash
# Session 11 run 8: the final v15 build's GPU tests and moe-demo.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs8; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
for t in gpu_gemm gpu_validation gpu_engine_api gpu_moe gpu_safety; do
  (cd .. && timeout 200 $B/$t --test-threads=1) > $L/test-$t.txt 2>&1; echo "rc=$?" >> $L/test-$t.txt
  echo "$t: $(grep -E '^test result' $L/test-$t.txt | tail -1) $(tail -1 $L/test-$t.txt)" | tee -a $L/tests.txt
  tar -czf $OUT/logs.tgz -C /tmp logs8
done
for p in gpt-oss-120b gpt-oss-20b; do
  timeout 60 $B/moe-demo --preset $p --prompt-tokens 16 --verify 2>/dev/null | grep -E "^decode|^verify" | sed "s/^/$p: /" | tee -a $L/tests.txt
done
tar -czf $OUT/logs.tgz -C /tmp logs8
