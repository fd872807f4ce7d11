#!/bin/bash
# Session 14 run 2: the 256-row tile's crossover (512 and 2048 rows per group), the issue 12 table with the
# heuristic choosing it (auto, both formats, both budgets) and triton_kernels in the same run, the bf16 baselines.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs2; rm -rf $L; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs2; }
timeout 90 $B/stagefit bench --preset qwen3-30b-a3b,gpt-oss-20b --tokens 4096,8192 --routing uniform --format mxfp4 --budget device --tactic wgm128n128k64:4,wgm256n128k64:4 --timing graph --no-cublas --reps 10 --json $L/cross1.json > $L/cross1.txt 2>&1; echo "rc=$?" >> $L/cross1.txt
timeout 90 $B/stagefit bench --preset mixtral-8x7b --tokens 1024,2048 --routing uniform --format mxfp4 --budget device --tactic wgm128n128k64:4,wgm256n128k64:4 --timing graph --no-cublas --reps 10 --json $L/cross2.json > $L/cross2.txt 2>&1; echo "rc=$?" >> $L/cross2.txt
save
timeout 200 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b --tokens 512,2048,8192 --routing uniform --format mxfp4,nvfp4 --budget device,101376 --timing graph --no-cublas --reps 10 --json $L/table.json > $L/table.txt 2>&1; echo "rc=$?" >> $L/table.txt
save
timeout 150 python3 triton-kernels-baseline.py --triton-kernels tk --tokens 512,2048,8192 --json $L/triton.json > $L/triton.txt 2>&1; echo "rc=$?" >> $L/triton.txt
save
python3 - <<'PY'
import json
for f in ["cross1","cross2"]:
    try: rows=json.load(open(f"/tmp/logs2/{f}.json"))["rows"]
    except Exception as e: print(f, "no json", e); continue
    for r in rows:
        print(f, r["preset"], r["projection"], r["tokens"], f'{r["tactic"]}:{r["stages"]}', "single %.1f graph %.1f"%(r.get("time_us") or 0, r.get("graph_us") or 0))
t=json.load(open("/tmp/logs2/table.json"))["rows"]
for r in t:
    print("T", r["preset"][8:], r["projection"], r["tokens"], r["format"], r["budget_bytes"], f'{r["tactic"]}:{r["stages"]}', "single %.1f graph %.1f"%(r.get("time_us") or 0, r.get("graph_us") or 0))
PY
tail -5 $L/triton.txt
