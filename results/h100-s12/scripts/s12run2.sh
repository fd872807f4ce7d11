#!/bin/bash
# Session 12 run 2: early weight copies in the swap-AB and Mma families, refitted heuristic and
# tune cache. GPU tests; moe-demo early vs --no-early-weights alternated twice; the issue 14 demo
# table (graph/eager x full/101376 budget, batch 1-128, 512-token prefill); --profile.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs2; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs2; }
for t in gpu_moe gpu_gemm gpu_validation gpu_engine_api gpu_safety; do
  (cd .. && timeout 200 $B/$t --test-threads=1) > $L/test-$t.txt 2>&1; echo "rc=$?" >> $L/test-$t.txt
  echo "$t: $(grep -E '^test result' $L/test-$t.txt | tail -1) $(tail -1 $L/test-$t.txt)" | tee -a $L/tests.txt
done
save
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
done
save
for p in gpt-oss-120b gpt-oss-20b; do
  for b in 1 8 32 128; do
    pt=16; [ $b = 1 ] && pt=512
    for budget in 232448 101376; do
      for mode in graph eager; do
        f=""; [ $mode = eager ] && f="--eager"
        timeout 90 $B/moe-demo --preset $p --batch $b --prompt-tokens $pt --decode-steps 128 --smem-limit $budget $f --json $L/demo-$p-b$b-$mode-$budget.json > /dev/null 2> $L/demo-$p-b$b-$mode-$budget.err
      done
    done
  done
  timeout 60 $B/moe-demo --preset $p --prompt-tokens 16 --profile --json $L/demo-$p-b1-profile.json 2>/dev/null | tail -10 > $L/profile-$p.txt
done
save
for p in gpt-oss-120b gpt-oss-20b; do
  timeout 60 $B/moe-demo --preset $p --prompt-tokens 16 --verify 2>/dev/null | grep -E "^verify" | sed "s/^/$p: /" >> $L/tests.txt
done
save
cat $L/tests.txt
sed -E 's/decode \(one CUDA graph per step\): 128 steps of batch [0-9]+ in [0-9.]+ ms = //; s/; expert weights.*//' $L/ab.txt
cat $L/profile-gpt-oss-120b.txt
