#!/bin/bash
# Session 11 run 6: swap-AB decode cells, three builds alternated: main (old), lane-ready words (pm, as committed) and pm with the scale factors of every row block worked out before the activation loads (A)
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs6; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
i=0
for round in 1 2; do
  for v in old pm A; do
    bin=$B/stagefit; [ $v = old ] && bin=$B/stagefit-old; [ $v = A ] && bin=$B/stagefit-A
    i=$((i+1))
    timeout 90 $bin bench --preset gpt-oss-20b,gpt-oss-120b,qwen3-30b-a3b,mixtral-8x7b --tokens 1,8,32 --routing uniform --format mxfp4,nvfp4 --budget device --timing graph --no-cublas --reps 10 --json $L/ab-$v-$i.json > $L/ab-$v-$i.txt 2>&1
  done
  tar -czf $OUT/logs.tgz -C /tmp logs6
done
python3 - <<'PY'
import json,glob,collections
ab=collections.defaultdict(lambda: collections.defaultdict(list)); tac={}
for f in sorted(glob.glob("/tmp/logs6/ab-*.json")):
    v=f.split("/")[-1].split("-")[1]
    for r in json.load(open(f))["rows"]:
        k=(r["preset"],r["projection"],r["tokens"],r["format"]); ab[k][v].append(r["graph_us"]); tac[k]=f'{r["tactic"]}:{r["stages"]}'
for k,d in ab.items():
    o=min(d["old"]); p=min(d["pm"]); w=min(d["A"])
    print(*k, tac[k], "old %.1f pm %.1f A %.1f  pm x%.3f A x%.3f"%(o,p,w,o/p,o/w))
PY
