#!/bin/bash
# Session 15 run 3: which down-projection variant is fastest inside the decode step (early weight copies before the
# wait, programmatic launch), against the shipped cache's standalone-tuned choice (v0): moe-demo --tuning with the
# 1-token bucket of the down projection set to each variant, batch 1 and 2, alternating.
set -u
cd "$(dirname "$0")"
rm -rf /tmp/bins /tmp/logs3
tar -xJf all.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs3; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs3; }
for p in gpt-oss-120b gpt-oss-20b; do
  for b in 1 2; do
    for round in 1 2; do
      for v in v0 v1 v2 v3 v4 v5 v6 v7 v8; do
        out=$(timeout 60 $B/moe-demo --preset $p --batch $b --prompt-tokens 16 --decode-steps 128 --tuning caches/$v.json 2>/dev/null)
        r=$(echo "$out" | grep -E "^decode" | head -1 | grep -oE "= [0-9.]+ tokens/s")
        d=$(echo "$out" | grep -E "decode.*down" | head -1 | tr -s " ")
        echo "$p b$b $v round$round: $r | $d" | tee -a $L/variants.txt
      done
    done
    save
  done
done
