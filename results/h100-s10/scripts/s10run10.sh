#!/bin/bash
# Session 10 run 10: an upper bound for a lane-ready weight order: v1 with every lane dequantizing
# pair 0 of each word (constant rotation and mask; results wrong, timing only) vs v1, one machine.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs10; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
run() { timeout 100 $B/$1 bench --preset gpt-oss-20b,gpt-oss-120b,mixtral-8x7b --tokens 2048,8192 --routing uniform --format mxfp4 --budget device --tactic wgm128n128k64:4 --timing graph --no-cublas --reps 10 --json $L/$2.json > $L/$2.txt 2>&1; echo "rc=$?" >> $L/$2.txt; }
run stagefit v1-a; run stagefit-e1 e1-a; run stagefit v1-b; run stagefit-e1 e1-b
tar -czf $OUT/logs.tgz -C /tmp logs10
for f in v1-a e1-a v1-b e1-b; do echo "== $f"; grep -E "wgm" $L/$f.txt | awk -F'|' '{print $2,$3,$4,$11,$12,$13}'; done
