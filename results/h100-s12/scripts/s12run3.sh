#!/bin/bash
# Session 12 run 3: issue 11 and 12 tables (stagefit bench with the refitted heuristic and the new
# shipped cache, triton_kernels in the same run); decode out of sample (bench's routing draw, not
# the tune's): the new shipped cache, the heuristic alone and main's cache, alternated.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs3; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs3; }
timeout 240 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b --tokens 1,8,32,128,512,2048,8192 --routing uniform --format mxfp4,nvfp4 --budget device,101376 --timing graph --no-cublas --reps 10 --json $L/table.json > $L/table.txt 2>&1; echo "rc=$?" >> $L/table.txt
save
timeout 200 python3 triton-kernels-baseline.py --triton-kernels tk --tokens 1,8,32,128,512,2048,8192 --json $L/triton.json > $L/triton.txt 2>&1; echo "rc=$?" >> $L/triton.txt
python3 s11tables.py $L/table.json $L/triton.json > $L/summary.md 2>&1
save
for round in 1 2; do
  for t in shipped heuristic old; do
    tt=$t; [ $t = old ] && tt=tuned-old.json
    timeout 90 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b,qwen3-30b-a3b,mixtral-8x7b --tokens 1,8,32,128 --routing uniform --format mxfp4,nvfp4 --budget device --timing graph --no-cublas --reps 10 --tuning $tt --json $L/dec-$t-$round.json > $L/dec-$t-$round.txt 2>&1
  done
  save
done
cat $L/summary.md
python3 - <<'PY'
import json,glob,collections,math
d=collections.defaultdict(lambda: collections.defaultdict(list)); tac=collections.defaultdict(dict)
for f in sorted(glob.glob("/tmp/logs3/dec-*.json")):
    v=f.split("/")[-1].split("-")[1]
    for r in json.load(open(f))["rows"]:
        k=(r["preset"],r["projection"],r["tokens"],r["format"]); d[k][v].append(r["graph_us"]); tac[k][v]=f'{r["tactic"]}:{r["stages"]}'
for a,b in [("shipped","old"),("heuristic","shipped"),("heuristic","old")]:
    rs=[]
    for k,x in d.items():
        if x[a] and x[b]: rs.append((min(x[b])/min(x[a]),k))
    g=math.exp(sum(math.log(r) for r,_ in rs)/len(rs))
    lo=sorted(rs)[:4]
    print(f"{a} vs {b}: geomean {g:.3f} (>1: {a} faster), min {[f'{r:.3f} {k}' for r,k in lo]}")
for k,x in sorted(d.items()):
    print(*k, " ".join(f"{v} {tac[k][v]} {min(x[v]):.1f}" for v in ("shipped","heuristic","old") if x[v]))
PY
