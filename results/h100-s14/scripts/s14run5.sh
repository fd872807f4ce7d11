#!/bin/bash
# Session 14 run 5: the committed build (the 256-row tile, the heuristic's rows): GPU tests and compute-sanitizer over the new tile.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs5; rm -rf $L; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
save() { tar -czf $OUT/logs.tgz -C /tmp logs5; }
(cd .. && timeout 200 $B/gpu_gemm --test-threads=1) > $L/gpu_gemm.txt 2>&1; echo "rc=$?" >> $L/gpu_gemm.txt
save
for t in gpu_safety gpu_validation gpu_engine_api gpu_moe; do
  (cd .. && timeout 150 $B/$t --test-threads=1) > $L/$t.txt 2>&1; echo "rc=$?" >> $L/$t.txt
done
save
S=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in memcheck synccheck initcheck racecheck; do
  timeout 150 $S --tool $tool --error-exitcode 9 $B/stagefit bench --preset gpt-oss-20b --tokens 64 --routing uniform --format mxfp4,nvfp4 --budget device --tactic wgm256n128k64:2,wgm256n128k64:6 --reps 1 --no-cublas > $L/san-$tool.txt 2>&1; echo "rc=$?" >> $L/san-$tool.txt
  save
done
timeout 120 $S --tool memcheck --error-exitcode 9 $B/gpu_safety --test-threads=1 bad_offsets > $L/san-safety.txt 2>&1; echo "rc=$?" >> $L/san-safety.txt
save
for f in $L/*.txt; do echo "== $(basename $f): $(grep -hE 'test result|ERROR SUMMARY|RACECHECK SUMMARY|rc=' $f | tr '\n' ' ')"; done
