#!/bin/bash
# Session 12 run 1: early down weights (swap-AB weight copies before griddepcontrol.wait).
# GPU tests on the new build; moe-demo A/B (early vs --no-early-weights) alternating twice.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs1; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
for t in gpu_moe gpu_gemm gpu_validation gpu_engine_api gpu_safety; do
  (cd .. && timeout 200 $B/$t --test-threads=1) > $L/test-$t.txt 2>&1; echo "rc=$?" >> $L/test-$t.txt
  echo "$t: $(grep -E '^test result' $L/test-$t.txt | tail -1) $(tail -1 $L/test-$t.txt)" | tee -a $L/tests.txt
  tar -czf $OUT/logs.tgz -C /tmp logs1
done
for p in gpt-oss-120b gpt-oss-20b; do
  for b in 1 2 8; do
    for rep in 1 2; do
      for mode in early late; do
        f=""; [ $mode = late ] && f="--no-early-weights"
        r=$(timeout 60 $B/moe-demo --preset $p --batch $b --prompt-tokens 16 --decode-steps 128 $f 2>/dev/null | grep -E "^decode" | head -1)
        echo "$p b$b $mode: $r" | tee -a $L/ab.txt
      done
    done
  done
  tar -czf $OUT/logs.tgz -C /tmp logs1
done
timeout 60 $B/moe-demo --preset gpt-oss-120b --prompt-tokens 16 --profile 2>/dev/null | tail -12 > $L/profile-120b.txt
timeout 60 $B/moe-demo --preset gpt-oss-120b --prompt-tokens 16 --verify 2>/dev/null | grep -E "^decode|^verify" >> $L/tests.txt
tar -czf $OUT/logs.tgz -C /tmp logs1
cat $L/tests.txt; cat $L/profile-120b.txt
