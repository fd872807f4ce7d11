#!/bin/bash
# Session 14 run 1: the 256-row wgmma tile (m64n256k16) in the v15 kernel structure, against wgm128 S4; gpu_gemm every tactic.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs1; rm -rf $L; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs1; }
timeout 150 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b --tokens 512,2048,8192 --routing uniform --format mxfp4 --budget device --tactic wgm128n128k64:4,wgm256n128k64:3,wgm256n128k64:4,wgm256n128k64:5 --timing graph --no-cublas --reps 10 --json $L/mx.json > $L/mx.txt 2>&1; echo "rc=$?" >> $L/mx.txt
save
timeout 100 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b --tokens 512,2048,8192 --routing uniform --format nvfp4 --budget device --tactic wgm128n128k64:4,wgm256n128k64:4 --timing graph --no-cublas --reps 10 --json $L/nv.json > $L/nv.txt 2>&1; echo "rc=$?" >> $L/nv.txt
timeout 60 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b --tokens 2048,8192 --routing uniform --format mxfp4 --budget 101376 --tactic wgm128n128k64:4,wgm256n128k64:2 --timing graph --no-cublas --reps 10 --json $L/mx101.json > $L/mx101.txt 2>&1; echo "rc=$?" >> $L/mx101.txt
save
(cd .. && timeout 280 $B/gpu_gemm --test-threads=1 --nocapture every_tactic) > $L/gpu_gemm.txt 2>&1; echo "rc=$?" >> $L/gpu_gemm.txt
save
grep -E "test result|rc=|panicked|failures" $L/gpu_gemm.txt | head -8
python3 - <<'PY'
import json
for f in ["mx","nv","mx101"]:
    try: rows=json.load(open(f"/tmp/logs1/{f}.json"))["rows"]
    except Exception as e: print(f, "no json", e); continue
    for r in rows:
        print(f, r["preset"][8:], r["projection"], r["tokens"], f'{r["tactic"]}:{r["stages"]}', "single %.1f graph %.1f"%(r.get("time_us") or 0, r.get("graph_us") or 0))
PY
