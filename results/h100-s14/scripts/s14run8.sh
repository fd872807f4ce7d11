#!/bin/bash
# Session 14 run 8: the final build: gpu_gemm, gpu_safety, gpu_moe, gpu_validation, gpu_engine_api; memcheck, synccheck and racecheck over the 256-row tile.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs8; rm -rf $L; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs8; }
(cd .. && timeout 200 $B/gpu_gemm --test-threads=1) > $L/gpu_gemm.txt 2>&1; echo "rc=$?" >> $L/gpu_gemm.txt
save
for t in gpu_safety gpu_validation gpu_engine_api gpu_moe; do
  (cd .. && timeout 150 $B/$t --test-threads=1) > $L/$t.txt 2>&1; echo "rc=$?" >> $L/$t.txt
done
save
S=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in memcheck synccheck; do
  timeout 100 $S --tool $tool --error-exitcode 9 $B/stagefit bench --preset gpt-oss-20b --tokens 64 --routing uniform --format mxfp4,nvfp4 --budget device --tactic wgm256n128k64:2,wgm256n128k64:6,wgm128n128k64:4 --reps 1 --no-cublas > $L/san-$tool.txt 2>&1; echo "rc=$?" >> $L/san-$tool.txt
  save
done
timeout 200 $S --tool racecheck --error-exitcode 9 $B/stagefit bench --preset qwen3-30b-a3b --tokens 1 --routing uniform --format mxfp4 --budget device --tactic wgm256n128k64:2 --reps 1 --no-cublas > $L/san-racecheck.txt 2>&1; echo "rc=$?" >> $L/san-racecheck.txt
save
for f in $L/*.txt; do echo "== $(basename $f): $(grep -hE 'test result|ERROR SUMMARY|RACECHECK SUMMARY|rc=' $f | tr '\n' ' ')"; done
