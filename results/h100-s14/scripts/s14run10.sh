#!/bin/bash
# Session 14 run 10: at 64 rows per group (gpt-oss-20b 512 tokens, gpt-oss-120b 2048, qwen3 1024, Mixtral 256): the 64-row wgmma tile against the 128-row one, final build.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs10; rm -rf $L; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs10; }
for round in 1 2; do
timeout 100 $B/stagefit bench --preset gpt-oss-20b --tokens 512,1024 --routing uniform --format mxfp4,nvfp4 --budget device --tactic wgm128n128k64:4,wgm64n128k64:8,wgm64n128k64:6 --timing graph --no-cublas --reps 10 --json $L/a-$round.json > $L/a-$round.txt 2>&1
timeout 100 $B/stagefit bench --preset gpt-oss-120b --tokens 2048,4096 --routing uniform --format mxfp4,nvfp4 --budget device --tactic wgm128n128k64:4,wgm64n128k64:8,wgm64n128k64:6 --timing graph --no-cublas --reps 10 --json $L/b-$round.json > $L/b-$round.txt 2>&1
timeout 100 $B/stagefit bench --preset qwen3-30b-a3b,mixtral-8x7b --tokens 1024,256 --routing uniform --format mxfp4 --budget device --tactic wgm128n128k64:4,wgm64n128k64:8 --timing graph --no-cublas --reps 10 --json $L/c-$round.json > $L/c-$round.txt 2>&1
save
done
python3 - <<'PY'
import json,glob,collections
d=collections.defaultdict(list)
for f in glob.glob("/tmp/logs10/*.json"):
    for r in json.load(open(f))["rows"]:
        d[(r["preset"],r["projection"],r["tokens"],r["format"],f'{r["tactic"]}:{r["stages"]}')].append(r["graph_us"])
for k in sorted(d): print(*k, "%.1f"%min(d[k]))
PY
