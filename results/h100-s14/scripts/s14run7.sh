#!/bin/bash
# Session 14 run 7: the final build: the issue 12 table (auto, both formats, both budgets) with triton_kernels in the
# same run, and qwen3-30b-a3b / Mixtral against the cuBLAS bf16 baselines.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs7; rm -rf $L; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs7; }
timeout 150 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b --tokens 512,2048,8192 --routing uniform --format mxfp4,nvfp4 --budget device,101376 --timing graph --no-cublas --reps 10 --json $L/table.json > $L/table.txt 2>&1; echo "rc=$?" >> $L/table.txt
save
timeout 120 python3 triton-kernels-baseline.py --triton-kernels tk --tokens 512,2048,8192 --json $L/triton.json > $L/triton.txt 2>&1; echo "rc=$?" >> $L/triton.txt
save
timeout 200 $B/stagefit bench --preset qwen3-30b-a3b,mixtral-8x7b --tokens 2048,8192 --routing uniform --format mxfp4,nvfp4 --budget device,101376 --timing graph --reps 10 --json $L/bf16.json > $L/bf16.txt 2>&1; echo "rc=$?" >> $L/bf16.txt
save
python3 s11tables.py $L/table.json $L/triton.json > $L/summary.md 2>&1
save
sed -n '/Issue 12, mxfp4/,$p' $L/summary.md
python3 - <<'PY'
import json
rows=json.load(open("/tmp/logs7/bf16.json"))["rows"]
for r in rows:
    print(r["preset"], r["projection"], r["tokens"], r["format"], r["budget_bytes"], f'{r["tactic"]}:{r["stages"]}', "graph %.1f cublas loop %s grouped %s"%(r.get("graph_us") or 0, r.get("cublas_us"), r.get("cublas_grouped_us")))
PY
