#!/bin/bash
# Session 13 run 2: v17 (router weights and the combine's routing/bias read before griddepcontrol.wait;
# route_small's ids through shared memory and the gather's x loads before the top-k).
# GPU tests; moe-demo A/B against main's build (base) alternating; profile; sanitizers.
set -u
cd "$(dirname "$0")"
rm -rf /tmp/bins /tmp/base /tmp/logs2
tar -xJf bins.tar.xz -C /tmp; mkdir -p /tmp/base; tar -xJf base.tar.xz -C /tmp/base
B=/tmp/bins; L=/tmp/logs2; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs2; }
for t in gpu_moe gpu_safety gpu_engine_api gpu_validation; do
  (cd .. && timeout 200 $B/$t --test-threads=1) > $L/test-$t.txt 2>&1; echo "rc=$?" >> $L/test-$t.txt
  echo "$t: $(grep -E '^test result' $L/test-$t.txt | tail -1) $(tail -1 $L/test-$t.txt)" | tee -a $L/tests.txt
  save
done
for p in gpt-oss-120b gpt-oss-20b; do
  for b in 1 2 8; do
    for a in base new new base; do
      D=$B; [ $a = base ] && D=/tmp/base/bins
      r=$(timeout 60 $D/moe-demo --preset $p --batch $b --prompt-tokens 16 --decode-steps 128 2>/dev/null | grep -E "^decode" | head -1)
      echo "$p b$b $a: $r" | tee -a $L/ab.txt
    done
  done
  save
done
timeout 60 $B/moe-demo --preset gpt-oss-120b --prompt-tokens 16 --profile 2>/dev/null | tail -12 > $L/profile-120b.txt
timeout 60 $B/moe-demo --preset gpt-oss-120b --prompt-tokens 16 --verify 2>/dev/null | grep -E "^decode|^verify" >> $L/tests.txt
save
for tool in memcheck racecheck synccheck; do
  for b in 1 8; do
    timeout 100 compute-sanitizer --tool $tool --error-exitcode 9 $B/moe-demo --preset gpt-oss-20b --layers 2 --batch $b --prompt-tokens 16 --decode-steps 3 > $L/sanitize-$tool-b$b.txt 2>&1
    echo "sanitize $tool b$b: rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $L/sanitize-$tool-b$b.txt | tail -1)" | tee -a $L/tests.txt
    save
  done
done
cat $L/tests.txt $L/ab.txt $L/profile-120b.txt
