#!/bin/bash
# Session 10 run 6: wgmma v3a at deeper STAGES (does a deeper ring recover wgm128? does wgm256 gain?).
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs6; mkdir -p $L
timeout 150 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b --tokens 512,2048,8192 --routing uniform --format mxfp4 --budget device --tactic wgm256n128k64:5,wgm256n128k64:6,wgm128n128k64:6,wgm128n128k64:8 --timing graph --no-cublas --reps 10 --json $L/deep.json > $L/deep.txt 2>&1; echo "rc=$?" >> $L/deep.txt
tar -czf $OUT/logs.tgz -C /tmp logs6
grep -E "wgm" $L/deep.txt | awk -F'|' '{print $2,$3,$4,$9,$10,$11,$12,$13}'
