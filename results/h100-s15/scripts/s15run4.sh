#!/bin/bash
# Session 15 run 4: the committed build (934f508, main's kernels): moe-demo with --tuning shipped / heuristic / a cache
# file (and the file at a smaller limit, which a cache made for a larger one serves: `Compatibility::LargerLimit`), gpu_engine_api and gpu_moe.
set -u
cd "$(dirname "$0")"
rm -rf /tmp/bins /tmp/logs4
tar -xJf all.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs4; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs4; }
for t in shipped heuristic caches/v0.json; do
  timeout 60 $B/moe-demo --preset gpt-oss-20b --layers 4 --prompt-tokens 16 --decode-steps 16 --verify --tuning $t > $L/demo-tuning-$(basename $t).txt 2>&1
  echo "--tuning $t: rc=$? $(grep -E 'tuning|^decode|^verify' $L/demo-tuning-$(basename $t).txt | tr '\n' ' ')" | tee -a $L/tests.txt
done
timeout 60 $B/moe-demo --preset gpt-oss-20b --layers 2 --smem-limit 101376 --tuning caches/v0.json > $L/demo-tuning-smaller-limit.txt 2>&1
echo "--tuning caches/v0.json --smem-limit 101376: rc=$? $(tail -1 $L/demo-tuning-smaller-limit.txt)" | tee -a $L/tests.txt
save
for t in gpu_engine_api gpu_moe; do
  (cd .. && timeout 240 $B/$t --test-threads=1) > $L/test-$t.txt 2>&1; echo "rc=$?" >> $L/test-$t.txt
  echo "$t: $(grep -E '^test result' $L/test-$t.txt | tail -1) $(tail -1 $L/test-$t.txt)" | tee -a $L/tests.txt
  save
done
