#!/bin/bash
# Session 15 run 1: the weighted combine in the down GEMM's epilogue (v18).
# gpu_moe; moe-demo A/B: main's build (base), this build with --no-fused-combine (plain) and fused, alternating;
# --profile and --verify; sanitizers on a captured two-layer step at batch 1 and 8.
set -u
cd "$(dirname "$0")"
rm -rf /tmp/bins /tmp/base /tmp/logs1
tar -xJf all.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs1; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs1; }
for t in gpu_moe; do
  (cd .. && timeout 240 $B/$t --test-threads=1) > $L/test-$t.txt 2>&1; echo "rc=$?" >> $L/test-$t.txt
  echo "$t: $(grep -E '^test result' $L/test-$t.txt | tail -1) $(tail -1 $L/test-$t.txt)" | tee -a $L/tests.txt
  save
done
for p in gpt-oss-120b gpt-oss-20b; do
  for b in 1 2 8; do
    for a in fused plain base base plain fused; do
      D=$B; f=""; [ $a = base ] && D=/tmp/base; [ $a = plain ] && f="--no-fused-combine"
      r=$(timeout 60 $D/moe-demo --preset $p --batch $b --prompt-tokens 16 --decode-steps 128 $f 2>/dev/null | grep -E "^decode" | head -1)
      echo "$p b$b $a: $r" | tee -a $L/ab.txt
    done
  done
  save
done
for p in gpt-oss-120b gpt-oss-20b; do
  for f in "" "--no-fused-combine"; do
    echo "== $p profile $f" >> $L/profile.txt
    timeout 60 $B/moe-demo --preset $p --prompt-tokens 16 --profile $f 2>/dev/null | tail -10 >> $L/profile.txt
  done
  timeout 60 $B/moe-demo --preset $p --prompt-tokens 16 --verify 2>/dev/null | grep -E "^verify" | sed "s/^/$p: /" >> $L/tests.txt
done
save
S=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in memcheck racecheck synccheck; do
  for b in 1 8; do
    timeout 100 $S --tool $tool --error-exitcode 9 $B/moe-demo --preset gpt-oss-20b --layers 2 --batch $b --prompt-tokens 16 --decode-steps 3 > $L/sanitize-$tool-b$b.txt 2>&1
    echo "sanitize $tool b$b: rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $L/sanitize-$tool-b$b.txt | tail -1)" | tee -a $L/tests.txt
    save
  done
done
cat $L/tests.txt $L/ab.txt $L/profile.txt
