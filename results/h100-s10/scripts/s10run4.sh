#!/bin/bash
# Session 10 run 4: ncu of wgmma v3 (producer warp) (ncu full set, one launch).
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
timeout 200 $NCU --set full --import-source no -k regex:wgm128 --launch-skip 2 -c 1 -o $L/wgm128 \
  $B/stagefit bench --preset gpt-oss-20b --tokens 8192 --routing uniform --format mxfp4 --budget device --tactic wgm128n128k64:4 --reps 3 --no-cublas > $L/ncu-run.txt 2>&1; echo "rc=$?" >> $L/ncu-run.txt
$NCU --import $L/wgm128.ncu-rep --page details > $L/details.txt 2>&1
$NCU --import $L/wgm128.ncu-rep --page raw --csv > $L/raw.csv 2>&1
$NCU --import $L/wgm128.ncu-rep --page source --print-source sass --csv > $L/sass.csv 2>&1
tar -czf $OUT/logs.tgz -C /tmp logs
tail -3 $L/ncu-run.txt
grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput|Issue Slots Busy|Registers Per|Achieved Occupancy|No Eligible|Active Warps Per|Eligible Warps|Shared Memory|Bank" $L/details.txt | head -40
