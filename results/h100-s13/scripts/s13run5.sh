#!/bin/bash
# Session 13 run 5: the one-launch routing (route_small) for up to 32 assignments: A/B of the host's
# limit (STAGEFIT_EXP_ROUTE_ROWS 8 = v17's, 32 = the kernel's capacity) at batch 4 and 8, alternated;
# then the largest limit that won at every batch up to it, gpu_moe with the one-launch routing up
# to 32 assignments, and (if the limit changed) the issue 14 demo table with it.
set -u
cd "$(dirname "$0")"
rm -rf /tmp/bins /tmp/logs5
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs5; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs5; }
for p in gpt-oss-120b gpt-oss-20b; do
  for b in 4 8; do
    for r in 8 32 32 8; do
      v=$(STAGEFIT_EXP_ROUTE_ROWS=$r timeout 60 $B/moe-demo --preset $p --batch $b --prompt-tokens 16 --decode-steps 128 2>/dev/null | grep -E "^decode" | head -1 | grep -oE "= [0-9.]+ tokens/s" | grep -oE "[0-9.]+")
      echo "$p $b $r $v" | tee -a $L/ab.txt
    done
  done
  save
done
LIMIT=$(python3 - <<'PY'
import collections
d=collections.defaultdict(list)
for l in open("/tmp/logs5/ab.txt"):
    p,b,r,v=l.split(); d[(p,int(b),int(r))].append(float(v))
limit=8
for b in [4,8]:
    if all(sum(d[(p,b,32)])/2 > sum(d[(p,b,8)])/2 for p in ["gpt-oss-120b","gpt-oss-20b"]): limit=4*b
    else: break
print(limit)
PY
)
echo "limit: $LIMIT" | tee -a $L/ab.txt
save
(cd .. && STAGEFIT_EXP_ROUTE_ROWS=32 timeout 200 $B/gpu_moe --test-threads=1) > $L/test-gpu_moe.txt 2>&1; echo "rc=$?" >> $L/test-gpu_moe.txt
echo "gpu_moe (one launch up to 32): $(grep -E '^test result' $L/test-gpu_moe.txt | tail -1) $(tail -1 $L/test-gpu_moe.txt)" | tee -a $L/tests.txt
save
if [ "$LIMIT" != 8 ]; then
  export STAGEFIT_EXP_ROUTE_ROWS=$LIMIT
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
    save
  done
  python3 s13table.py $L > $L/issue14-table.md
  save
fi
cat $L/ab.txt $L/tests.txt $L/issue14-table.md 2>/dev/null
