#!/bin/bash
# Session 13 run 7 (the committed kernels, dee8b00, and gpu_safety's NaN test also at 2 tokens): the issue 14 demo table (graph/eager x full/101376 budget,
# batch 1-128, 512-token prefill at batch 1), --profile and --verify of both presets, and
# gpu_safety (canaries and poisoned outputs around the one-launch and five-kernel routing).
set -u
cd "$(dirname "$0")"
rm -rf /tmp/bins /tmp/logs7
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs7; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs7; }
for t in gpu_safety; do
  (cd .. && timeout 200 $B/$t --test-threads=1) > $L/test-$t.txt 2>&1; echo "rc=$?" >> $L/test-$t.txt
  echo "$t: $(grep -E '^test result' $L/test-$t.txt | tail -1) $(tail -1 $L/test-$t.txt)" | tee -a $L/tests.txt
  save
done
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
  timeout 60 $B/moe-demo --preset $p --prompt-tokens 16 --verify 2>/dev/null | grep -E "^verify" | sed "s/^/$p: /" >> $L/tests.txt
  save
done
python3 s13table.py $L > $L/issue14-table.md
save
cat $L/tests.txt $L/issue14-table.md $L/profile-gpt-oss-120b.txt $L/profile-gpt-oss-20b.txt
