#!/bin/bash
# Session 14 run 11: initcheck over the final build's wgmma tiles (the 256-row at 2 and 6 STAGES, the 128-row at 4, the 64-row at 8), both formats.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs11; rm -rf $L; mkdir -p $L
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
S=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout 200 $S --tool initcheck --error-exitcode 9 $B/stagefit bench --preset gpt-oss-20b --tokens 64 --routing uniform --format mxfp4,nvfp4 --budget device --tactic wgm256n128k64:2,wgm256n128k64:6,wgm128n128k64:4,wgm64n128k64:8 --reps 1 --no-cublas > $L/san-initcheck.txt 2>&1; echo "rc=$?" >> $L/san-initcheck.txt
tar -czf $OUT/logs.tgz -C /tmp logs11
grep -hE 'ERROR SUMMARY|rc=' $L/san-initcheck.txt
