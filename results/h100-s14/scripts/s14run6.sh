#!/bin/bash
# Session 14 run 6: the next tile's first copies issued before the epilogue (wgmma)
# against the committed build (804c0c9), alternated twice, auto on the prefill cells.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs6; rm -rf $L; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs6; }
i=0
for round in 1 2; do
  for v in old new; do
    bin=$B/stagefit; [ $v = old ] && bin=$B/stagefit-old
    i=$((i+1))
    timeout 130 $bin bench --preset gpt-oss-20b,gpt-oss-120b,qwen3-30b-a3b,mixtral-8x7b --tokens 512,2048,8192 --routing uniform --format mxfp4,nvfp4 --budget device --timing graph --no-cublas --reps 10 --json $L/ab-$v-$i.json > $L/ab-$v-$i.txt 2>&1; echo "rc=$?" >> $L/ab-$v-$i.txt
  done
  save
done
python3 - <<'PY'
import json,glob,collections,math
ab=collections.defaultdict(lambda: collections.defaultdict(list)); tac={}
for f in sorted(glob.glob("/tmp/logs6/ab-*.json")):
    v=f.split("/")[-1].split("-")[1]
    for r in json.load(open(f))["rows"]:
        k=(r["preset"],r["projection"],r["tokens"],r["format"]); ab[k][v].append((r["graph_us"],r["time_us"])); tac[k]=f'{r["tactic"]}:{r["stages"]}'
rs=[]
for k,d in ab.items():
    o=min(x[0] for x in d["old"]); n=min(x[0] for x in d["new"]); os_=min(x[1] for x in d["old"]); ns=min(x[1] for x in d["new"])
    if "wgm" in tac[k]: rs.append(o/n)
    print("ab",*k, tac[k], "graph old %.1f new %.1f x%.3f | single old %.1f new %.1f x%.3f"%(o,n,o/n,os_,ns,os_/ns))
print("wgmma cells geomean %.3f min %.3f max %.3f"%(math.exp(sum(map(math.log,rs))/len(rs)),min(rs),max(rs)))
PY
