#!/bin/bash
# Session 15 run 5: issue 14's demo table on the final build (934f508: main's kernels, moe-demo --tuning added):
# graph/eager x full/101376 budget, batch 1-128, 512-token prefill at batch 1; --profile and --verify.
set -u
cd "$(dirname "$0")"
rm -rf /tmp/bins /tmp/logs5
tar -xJf all.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs5; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs5; }
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
