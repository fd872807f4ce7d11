#!/bin/bash
# Session 12 run 5: ncu of the 1-token decode GEMMs on the final build (gpt-oss-20b and 120b, MXFP4):
# what limits the 1-token down projection (issue 11's 50 % target).
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs6; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
for p in gpt-oss-20b gpt-oss-120b; do
  for skip in 2 7; do
    timeout 120 ncu --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis -k regex:stagefit_gemm --launch-skip $skip -c 1 $B/stagefit bench --preset $p --tokens 1 --format mxfp4 --budget device --no-cublas --reps 3 > $L/ncu-$p-skip$skip.txt 2>&1
    tar -czf $OUT/logs.tgz -C /tmp logs6
  done
done
for f in $L/ncu-*.txt; do echo "== $f"; grep -E "stagefit_gemm|Duration|DRAM Throughput|Memory Throughput|Compute \(SM\)|Achieved Occupancy|Theoretical Occupancy|Block Limit|Registers Per|Issued Warp|No Eligible|Active Warps Per|Eligible Warps|Waves Per SM|Grid Size" $f | head -24; done
# The launch-skip runs above both caught gate_up (swm8n64k512w1k4 S2); the down GEMM was then
# profiled by its tactic, as run:
#   ncu <same sections> -k regex:swm8n32k512w1k4 --launch-skip 2 -c 1 stagefit bench --preset $p \
#     --tokens 1 --format mxfp4 --budget device --no-cublas --reps 3 > ncu-$p-down.txt
