#!/bin/bash
# Session 11 run 7: the final v15 build (MXFP4 swap-AB factors early) — issue 11 and 12 tables with
# triton_kernels in the same run, main's build and v15 alternated on the decode cells.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs7; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs7; }
timeout 200 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b --tokens 1,8,32,128,512,2048,8192 --routing uniform --format mxfp4,nvfp4 --budget device,101376 --timing graph --no-cublas --reps 10 --json $L/table.json > $L/table.txt 2>&1; echo "rc=$?" >> $L/table.txt
save
timeout 200 python3 triton-kernels-baseline.py --triton-kernels tk --tokens 1,8,32,128,512,2048,8192 --json $L/triton.json > $L/triton.txt 2>&1; echo "rc=$?" >> $L/triton.txt
python3 s11tables.py $L/table.json $L/triton.json > $L/summary.md 2>&1
save
i=0
for round in 1 2; do
  for v in old new; do
    bin=$B/stagefit; [ $v = old ] && bin=$B/stagefit-old
    i=$((i+1))
    timeout 90 $bin bench --preset gpt-oss-20b,gpt-oss-120b,qwen3-30b-a3b,mixtral-8x7b --tokens 1,8,32,128 --routing uniform --format mxfp4,nvfp4 --budget device --timing graph --no-cublas --reps 10 --json $L/ab-$v-$i.json > $L/ab-$v-$i.txt 2>&1
  done
  save
done
cat $L/summary.md
python3 - <<'PY'
import json,glob,collections,math
ab=collections.defaultdict(lambda: collections.defaultdict(list)); tac={}
for f in sorted(glob.glob("/tmp/logs7/ab-*.json")):
    v=f.split("/")[-1].split("-")[1]
    for r in json.load(open(f))["rows"]:
        k=(r["preset"],r["projection"],r["tokens"],r["format"]); ab[k][v].append(r["graph_us"]); tac[k]=f'{r["tactic"]}:{r["stages"]}'
rs=[]
for k,d in ab.items():
    o=min(d["old"]); n=min(d["new"]); rs.append(o/n)
    print("ab",*k, tac[k], "old %.1f new %.1f x%.3f"%(o,n,o/n))
print("ab geomean %.3f min %.3f max %.3f"%(math.exp(sum(map(math.log,rs))/len(rs)),min(rs),max(rs)))
PY
