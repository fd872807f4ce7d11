#!/bin/bash
# Session 13 run 1: (a) L2 prefetch of each tile's whole weight strip (GroupedGemmParams::prefetch_weights,
# switched by STAGEFIT_EXP_PREFETCH in this experiment build); (b) router weights / combine inputs read
# before griddepcontrol.wait. Arms: base (main's build), pf0 (new, prefetch off), pf1 (new, prefetch on).
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp; mkdir -p /tmp/base; tar -xJf base.tar.xz -C /tmp/base
L=/tmp/logs1; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs1; }
arm() { case $1 in base) echo "/tmp/base/bins 0";; pf0) echo "/tmp/bins 0";; pf1) echo "/tmp/bins 1";; esac; }
for a in base pf0 pf1 pf1 pf0 base; do
  set -- $(arm $a); B=$1; PF=$2; n=$(ls $L/bench-$a-*.json 2>/dev/null | wc -l)
  STAGEFIT_EXP_PREFETCH=$PF timeout 120 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b --tokens 1,8,32 --routing uniform --format mxfp4,nvfp4 --budget device --timing graph --no-cublas --reps 10 --json $L/bench-$a-$n.json > $L/bench-$a-$n.txt 2>&1
  save
done
for p in gpt-oss-120b gpt-oss-20b; do
  for b in 1 8; do
    for a in base pf0 pf1 pf1 pf0 base; do
      set -- $(arm $a); B=$1; PF=$2
      r=$(STAGEFIT_EXP_PREFETCH=$PF timeout 60 $B/moe-demo --preset $p --batch $b --prompt-tokens 16 --decode-steps 128 2>/dev/null | grep -E "^decode" | head -1)
      echo "$p b$b $a: $r" | tee -a $L/ab.txt
    done
  done
  save
done
for a in pf1 pf0; do
  set -- $(arm $a)
  STAGEFIT_EXP_PREFETCH=$2 timeout 60 $1/moe-demo --preset gpt-oss-120b --prompt-tokens 16 --profile 2>/dev/null | tail -12 > $L/profile-120b-$a.txt
done
STAGEFIT_EXP_PREFETCH=1 timeout 60 /tmp/bins/moe-demo --preset gpt-oss-120b --prompt-tokens 16 --verify 2>/dev/null | grep -E "^decode|^verify" > $L/verify.txt
save
python3 - <<'PY'
import json,glob,collections
d=collections.defaultdict(lambda: collections.defaultdict(list)); tac={}
for f in sorted(glob.glob("/tmp/logs1/bench-*.json")):
    a=f.split("bench-")[1].split("-")[0]
    for r in json.load(open(f))["rows"]:
        k=(r["preset"],r["projection"],r["tokens"],r["format"]); d[k][a].append(r["graph_us"]); tac[k]=f'{r["tactic"]}:{r["stages"]}'
print("preset proj T fmt tactic  base pf0 pf1  pf0/base pf1/pf0")
for k,x in sorted(d.items()):
    if x["base"] and x["pf0"] and x["pf1"]:
        b,a,c=min(x["base"]),min(x["pf0"]),min(x["pf1"]); print(*k, tac[k], f"{b:.1f} {a:.1f} {c:.1f}  {a/b:.3f} {c/a:.3f}")
PY
cat $L/ab.txt $L/profile-120b-pf1.txt $L/profile-120b-pf0.txt $L/verify.txt
