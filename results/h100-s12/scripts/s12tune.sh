#!/bin/bash
# Session 12 tune: every runnable variant on the decode problems (four presets, 1-128 tokens),
# two routing draws each, merged into the cache given as $2 (or the shipped one).
set -u
cd "$(dirname "$0")"
tar -xJf tune-bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/tlogs; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
cp ${2:-../host/tuned/nvidia-h100-80gb-hbm3.json} $L/tuned.json
start=$(date +%s)
timeout 560 $B/stagefit tune --out $L/tuned.json --tokens 1,8,32,128 --format $1 --draws 2 > $L/tune-$1.txt 2>&1; echo "rc=$? seconds=$(( $(date +%s) - start ))" >> $L/tune-$1.txt
cp $L/tuned.json $L/tune-$1.txt $OUT/
tail -45 $L/tune-$1.txt
