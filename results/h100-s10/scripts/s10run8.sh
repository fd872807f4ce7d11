#!/bin/bash
# Session 10 run 8: the cuBLAS grouped baseline (cublasGemmGroupedBatchedEx) beside the per-expert
# loop, on every preset at prefill sizes (issue 12's second baseline), stagefit auto, graph timing.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs8; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
timeout 300 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b,qwen3-30b-a3b,mixtral-8x7b --tokens 512,2048,8192 --routing uniform --format mxfp4 --budget device --timing graph --reps 10 --json $L/bench.json > $L/bench.txt 2>&1; echo "rc=$?" >> $L/bench.txt
tar -czf $OUT/logs.tgz -C /tmp logs8
grep -E "^\|" $L/bench.txt | awk -F'|' '{print $2,$3,$4,$9,$10,$11,$12,$13,$18,$19,$20,$21}' | head -40
tail -3 $L/bench.txt
