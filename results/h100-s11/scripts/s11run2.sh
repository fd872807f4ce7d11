#!/bin/bash
# Session 11 run 2: the lane-ready words as committed — issue 11 and 12 tables with
# triton_kernels in the same run; old/new alternated on the decode cells that moved; the Mma
# family's prefill tiles forced; the MoE and safety GPU tests; moe-demo --verify.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs2; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs2; }
timeout 200 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b --tokens 1,8,32,128,512,2048,8192 --routing uniform --format mxfp4,nvfp4 --budget device,101376 --timing graph --no-cublas --reps 10 --json $L/table.json > $L/table.txt 2>&1; echo "rc=$?" >> $L/table.txt
save
timeout 200 python3 triton-kernels-baseline.py --triton-kernels tk --tokens 1,8,32,128,512,2048,8192 --json $L/triton.json > $L/triton.txt 2>&1; echo "rc=$?" >> $L/triton.txt
save
python3 s11tables.py $L/table.json $L/triton.json > $L/summary.md 2>&1
save
for v in old new old new; do
  bin=$B/stagefit; [ $v = old ] && bin=$B/stagefit-old
  timeout 60 $bin bench --preset gpt-oss-20b,qwen3-30b-a3b,mixtral-8x7b --tokens 1,8 --routing uniform --format mxfp4 --budget device --timing graph --no-cublas --reps 10 --json $L/ab-$v-$RANDOM.json > /dev/null 2>&1
done
for v in old new; do
  bin=$B/stagefit; [ $v = old ] && bin=$B/stagefit-old
  timeout 60 $bin bench --preset gpt-oss-20b --tokens 2048,8192 --routing uniform --format mxfp4,nvfp4 --budget device --tactic m128n128k64w2x4:3,m64n128k64w2x4:4,m16n128k128w1x4:3 --timing graph --no-cublas --reps 10 --json $L/mma-$v.json > $L/mma-$v.txt 2>&1
done
save
for t in gpu_moe gpu_safety; do
  (cd .. && timeout 150 $B/$t --test-threads=1) > $L/test-$t.txt 2>&1; echo "rc=$?" >> $L/test-$t.txt
  echo "$t: $(grep -E '^test result' $L/test-$t.txt | tail -1) $(tail -1 $L/test-$t.txt)" | tee -a $L/tests.txt
  save
done
for p in gpt-oss-120b gpt-oss-20b; do
  timeout 60 $B/moe-demo --preset $p --prompt-tokens 16 --verify 2>/dev/null | grep -E "^decode|^verify" | sed "s/^/$p: /" | tee -a $L/tests.txt
done
save
cat $L/summary.md
python3 - <<'PY'
import json,glob,collections
def load(f):
    return {(r["preset"],r["projection"],r["tokens"],r["format"],r["tactic"],r["stages"]):r["graph_us"] for r in json.load(open(f))["rows"]}
for kind in ("ab-old","ab-new"):
    pass
ab=collections.defaultdict(lambda: {"old":[], "new":[]})
for f in sorted(glob.glob("/tmp/logs2/ab-*.json")):
    v="old" if "-old-" in f else "new"
    for k,g in load(f).items(): ab[k[:4]][v].append(g)
for k,d in ab.items(): print("ab",*k,"old",["%.1f"%x for x in d["old"]],"new",["%.1f"%x for x in d["new"]])
o=load("/tmp/logs2/mma-old.json"); n=load("/tmp/logs2/mma-new.json")
for k in n:
    if k in o: print("mma",*k,"old %.1f new %.1f x%.3f"%(o[k],n[k],o[k]/n[k]))
PY
