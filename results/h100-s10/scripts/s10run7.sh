#!/bin/bash
# Session 10 run 7: the mbarrier waits with a suspend-time hint: v3a (thread 0 copies A) and v3b (producer warp) against v1, same machine.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs7; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
run() { timeout 100 $B/$1 bench --preset gpt-oss-20b,gpt-oss-120b --tokens 512,2048,8192 --routing uniform --format mxfp4 --budget device --tactic $2 --timing graph --no-cublas --reps 10 --json $L/$1.json > $L/$1.txt 2>&1; echo "rc=$?" >> $L/$1.txt; }
run stagefit-old wgm128n128k64:4
mv $L/stagefit-old.txt $L/stagefit-old1.txt
run stagefit-a wgm128n128k64:4,wgm256n128k64:4
run stagefit-b wgm128n128k64:4
run stagefit-old wgm128n128k64:4
mv $L/stagefit-old.txt $L/stagefit-old2.txt 2>/dev/null
tar -czf $OUT/logs.tgz -C /tmp logs7
for f in stagefit-old1 stagefit-a stagefit-b stagefit-old2; do echo "== $f"; grep -E "wgm" $L/$f.txt | awk -F'|' '{print $2,$3,$4,$9,$10,$11,$12}'; done
