#!/bin/bash
# Session 11 run 9: the final v15 build against both bf16 baselines (cuBLAS per-expert GEMMs in a
# graph, cuBLAS's grouped call) on qwen3-30b-a3b and Mixtral prefill (issue 12's second target).
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs9; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
timeout 300 $B/stagefit bench --preset qwen3-30b-a3b,mixtral-8x7b --tokens 2048,8192 --routing uniform --format mxfp4,nvfp4 --budget device,101376 --timing graph --reps 10 --json $L/bench.json > $L/bench.txt 2>&1; echo "rc=$?" >> $L/bench.txt
tar -czf $OUT/logs.tgz -C /tmp logs9
grep -E "^\|" $L/bench.txt | awk -F'|' '{print $2,$3,$4,$6,$7,$9,$10,$11,$12,$18,$19,$20,$21}' | head -40
tail -2 $L/bench.txt
