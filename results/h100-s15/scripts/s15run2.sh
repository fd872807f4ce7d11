#!/bin/bash
# Session 15 run 2: main's build (956adfa; the fused combine of run 1 reverted): the issue 12 table (auto, both formats,
# both budgets) with triton_kernels in the same run, qwen3-30b-a3b / Mixtral against the cuBLAS bf16 baselines, and the
# issue 14 demo table (graph/eager x full/101376, batch 1-128, 512-token prefill at batch 1), --profile and --verify.
set -u
cd "$(dirname "$0")"
rm -rf /tmp/bins /tmp/logs2
tar -xJf all.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs2; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs2; }
timeout 150 $B/stagefit bench --preset gpt-oss-20b,gpt-oss-120b --tokens 512,2048,8192 --routing uniform --format mxfp4,nvfp4 --budget device,101376 --timing graph --no-cublas --reps 10 --json $L/table.json > $L/table.txt 2>&1; echo "rc=$?" >> $L/table.txt
save
timeout 120 python3 triton-kernels-baseline.py --triton-kernels tk --tokens 512,2048,8192 --json $L/triton.json > $L/triton.txt 2>&1; echo "rc=$?" >> $L/triton.txt
save
python3 s11tables.py $L/table.json $L/triton.json > $L/summary.md 2>&1
save
for p in gpt-oss-120b gpt-oss-20b; do
  for b in 1 8 32 128; do
    pt=16; [ $b = 1 ] && pt=512
    for budget in 232448 101376; do
      for mode in graph eager; do
        f=""; [ $mode = eager ] && f="--eager"
        timeout 90 $B/moe-demo --preset $p --batch $b --prompt-tokens $pt --decode-steps 128 --smem-limit $budget $f --json $L/demo-$p-b$b-$mode-$budget.json > /dev/null 2> $L/demo-$p-b$b-$mode-$budget.err
      done
    done
  done
  timeout 60 $B/moe-demo --preset $p --prompt-tokens 16 --profile --json $L/demo-$p-b1-profile.json 2>/dev/null | tail -10 > $L/profile-$p.txt
  timeout 60 $B/moe-demo --preset $p --prompt-tokens 16 --verify 2>/dev/null | grep -E "^verify" | sed "s/^/$p: /" >> $L/tests.txt
  save
done
python3 s13table.py $L > $L/issue14-table.md
save
timeout 200 $B/stagefit bench --preset qwen3-30b-a3b,mixtral-8x7b --tokens 2048,8192 --routing uniform --format mxfp4,nvfp4 --budget device,101376 --timing graph --reps 10 --json $L/bf16.json > $L/bf16.txt 2>&1; echo "rc=$?" >> $L/bf16.txt
save
sed -n '/Issue 12, mxfp4/,$p' $L/summary.md
cat $L/tests.txt $L/issue14-table.md $L/profile-gpt-oss-120b.txt
python3 - <<'PY'
import json
rows=json.load(open("/tmp/logs2/bf16.json"))["rows"]
for r in rows:
    print(r["preset"], r["projection"], r["tokens"], r["format"], r["budget_bytes"], f'{r["tactic"]}:{r["stages"]}', "graph %.1f cublas loop %s grouped %s"%(r.get("graph_us") or 0, r.get("cublas_us"), r.get("cublas_grouped_us")))
PY
