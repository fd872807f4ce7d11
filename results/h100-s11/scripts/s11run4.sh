#!/bin/bash
# Session 11 run 4: re-tune the decode problems (1-128 tokens, four presets, both formats) on the
# lane-ready build, merged into the shipped cache; bench decode with the new cache against the
# shipped one (out of sample: bench's routing draw differs from the tune's).
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs4; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
cp ../host/tuned/nvidia-h100-80gb-hbm3.json $L/tuned.json
timeout 480 $B/stagefit tune --out $L/tuned.json --tokens 1,8,32,128 --format mxfp4,nvfp4 > $L/tune.txt 2>&1; echo "rc=$?" >> $L/tune.txt
tar -czf $OUT/logs.tgz -C /tmp logs4
for c in shipped new; do
  t=shipped; [ $c = new ] && t=$L/tuned.json
  timeout 60 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b,qwen3-30b-a3b,mixtral-8x7b --tokens 1,8,32,128 --routing uniform --format mxfp4,nvfp4 --budget device --timing graph --no-cublas --reps 10 --tuning $t --json $L/bench-$c.json > $L/bench-$c.txt 2>&1
done
tar -czf $OUT/logs.tgz -C /tmp logs4
grep -E "^\|" $L/tune.txt | awk -F'|' '$10+0 > 1.05 {print}' | head -30
tail -3 $L/tune.txt
python3 - <<'PY'
import json
def load(f): return {(r["preset"],r["projection"],r["tokens"],r["format"]):r for r in json.load(open(f))["rows"]}
o=load("/tmp/logs4/bench-shipped.json"); n=load("/tmp/logs4/bench-new.json")
for k in n:
    if k in o and abs(o[k]["graph_us"]/n[k]["graph_us"]-1)>0.02 or (k in o and o[k]["tactic"]!=n[k]["tactic"]):
        print(*k, f'{o[k]["tactic"]}:{o[k]["stages"]} {o[k]["graph_us"]:.1f} -> {n[k]["tactic"]}:{n[k]["stages"]} {n[k]["graph_us"]:.1f} x{o[k]["graph_us"]/n[k]["graph_us"]:.3f}')
PY
