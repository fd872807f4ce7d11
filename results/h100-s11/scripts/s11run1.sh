#!/bin/bash
# Session 11 run 1: lane-ready device words (all three families) — A/B against main's build on
# prefill and decode, then the GPU correctness tests.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs1; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs1; }
for v in new old; do
  bin=$B/stagefit; [ $v = old ] && bin=$B/stagefit-old
  timeout 120 $bin bench --preset gpt-oss-20b,gpt-oss-120b --tokens 512,2048,8192 --routing uniform --format mxfp4,nvfp4 --budget device --timing graph --no-cublas --reps 10 --json $L/pre-$v.json > $L/pre-$v.txt 2>&1; echo "rc=$?" >> $L/pre-$v.txt
  save
done
for v in new old; do
  bin=$B/stagefit; [ $v = old ] && bin=$B/stagefit-old
  timeout 100 $bin bench --preset gpt-oss-20b,gpt-oss-120b,qwen3-30b-a3b,mixtral-8x7b --tokens 1,8,32,128 --routing uniform --format mxfp4 --budget device --timing graph --no-cublas --reps 10 --json $L/dec-$v.json > $L/dec-$v.txt 2>&1; echo "rc=$?" >> $L/dec-$v.txt
  save
done
for t in gpu_engine_api gpu_validation gpu_gemm; do
  (cd .. && timeout 200 $B/$t --test-threads=1) > $L/test-$t.txt 2>&1; echo "rc=$?" >> $L/test-$t.txt
  echo "$t: $(grep -E '^test result' $L/test-$t.txt | tail -1) $(tail -1 $L/test-$t.txt)" | tee -a $L/summary.txt
  save
done
python3 - <<'PY'
import json
def load(f):
    try: d=json.load(open(f))
    except Exception as e: return {}
    rows=d["rows"]
    out={}
    for r in rows:
        k=(r["preset"],r["projection"],r["tokens"],r["format"])
        out[k]=(r.get("tactic"),r.get("stages"),r.get("graph_us"))
    return out
for kind in ("pre","dec"):
    n=load(f"/tmp/logs1/{kind}-new.json"); o=load(f"/tmp/logs1/{kind}-old.json"); n2=load(f"/tmp/logs1/{kind}-new2.json")
    for k in n:
        if k in o and n[k][2] and o[k][2]:
            extra=f" new2 {n2[k][2]:.1f}" if k in n2 and n2[k][2] else ""
            print(kind,*k,n[k][0],n[k][1],f"old {o[k][2]:.1f} new {n[k][2]:.1f}{extra} x{o[k][2]/n[k][2]:.3f}")
PY
