#!/bin/bash
# Session 13 run 6: the committed build (v17 plus a refactor of the router's and gather's loads, the
# same arithmetic): gpu_moe, moe-demo at batch 1 and 8, memcheck at batch 1.
set -u
cd "$(dirname "$0")"
rm -rf /tmp/bins /tmp/logs6
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs6; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs6; }
(cd .. && timeout 200 $B/gpu_moe --test-threads=1) > $L/test-gpu_moe.txt 2>&1; echo "rc=$?" >> $L/test-gpu_moe.txt
echo "gpu_moe: $(grep -E '^test result' $L/test-gpu_moe.txt | tail -1) $(tail -1 $L/test-gpu_moe.txt)" | tee -a $L/tests.txt
save
for p in gpt-oss-120b gpt-oss-20b; do
  for b in 1 8; do
    r=$(timeout 60 $B/moe-demo --preset $p --batch $b --prompt-tokens 16 --decode-steps 128 2>/dev/null | grep -E "^decode" | head -1 | grep -oE "= [0-9.]+ tokens/s")
    echo "$p b$b: $r" | tee -a $L/demo.txt
  done
done
timeout 60 $B/moe-demo --preset gpt-oss-120b --prompt-tokens 16 --verify 2>/dev/null | grep -E "^verify" >> $L/tests.txt
timeout 100 compute-sanitizer --tool memcheck --error-exitcode 9 $B/moe-demo --preset gpt-oss-20b --layers 2 --batch 1 --prompt-tokens 16 --decode-steps 3 > $L/sanitize-memcheck-b1.txt 2>&1
echo "sanitize memcheck b1: rc=$? $(grep -E 'ERROR SUMMARY' $L/sanitize-memcheck-b1.txt | tail -1)" | tee -a $L/tests.txt
save
cat $L/tests.txt $L/demo.txt
