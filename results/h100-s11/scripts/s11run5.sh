#!/bin/bash
# Session 11 run 5: ncu of two swap-AB decode cells that v15 made slower, old and new build.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs5; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
for v in old new; do
  bin=$B/stagefit; [ $v = old ] && bin=$B/stagefit-old
  timeout 120 $NCU --set full --import-source no -k regex:swm8n64k512 --launch-skip 7 -c 1 -o $L/mix-$v \
    $bin bench --preset mixtral-8x7b --tokens 1 --routing uniform --format mxfp4 --budget device --tactic swm8n64k512w1k4:4 --reps 3 --no-cublas > $L/ncu-mix-$v.txt 2>&1
  timeout 120 $NCU --set full --import-source no -k regex:swm8n128k256 --launch-skip 7 -c 1 -o $L/q3-$v \
    $bin bench --preset qwen3-30b-a3b --tokens 1 --routing uniform --format mxfp4 --budget device --tactic swm8n128k256w2k2:5 --reps 3 --no-cublas > $L/ncu-q3-$v.txt 2>&1
  for c in mix q3; do
    $NCU --import $L/$c-$v.ncu-rep --page details > $L/details-$c-$v.txt 2>&1
    $NCU --import $L/$c-$v.ncu-rep --page raw --csv > $L/raw-$c-$v.csv 2>&1
    $NCU --import $L/$c-$v.ncu-rep --page source --print-source sass --csv > $L/sass-$c-$v.csv 2>&1
  done
done
tar -czf $OUT/logs.tgz -C /tmp logs5
for c in mix q3; do for v in old new; do
  echo "== $c $v"; grep -E "^    Duration|Grid Size|Issue Slots Busy|Registers Per|Achieved Occupancy|Eligible Warps|Executed Instructions  |DRAM Throughput|Memory Throughput" $L/details-$c-$v.txt | head -12
done; done
python3 - <<'PY'
import csv
for c in ("mix","q3"):
    for v in ("old","new"):
        rows=list(csv.reader(open(f"/tmp/logs5/raw-{c}-{v}.csv")))
        if len(rows)<3: print(c,v,"no raw"); continue
        h=rows[0]; r=rows[2]
        st=[(h[i].replace("smsp__average_warp_latency_issue_stalled_","").replace("smsp__average_warps_issue_stalled_",""),r[i]) for i in range(len(h)) if ("warps_issue_stalled_" in h[i] and h[i].endswith("_per_issue_active.ratio"))]
        st=sorted(((n,float(x.replace(",",""))) for n,x in st if x.replace(",","").replace(".","").isdigit()), key=lambda t:-t[1])[:8]
        print(c,v," ".join(f"{n.replace('_per_issue_active.ratio','')}={x:.2f}" for n,x in st))
PY
