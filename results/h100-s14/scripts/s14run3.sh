#!/bin/bash
# Session 14 run 3: ncu of the 256-row tile (wgm256n128k64 S4) on gpt-oss-20b gate_up, 8192 tokens: where the K loop waits.
set -u
cd "$(dirname "$0")"
tar -xJf bins.tar.xz -C /tmp
B=/tmp/bins; L=/tmp/logs3; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $L/gpu.txt
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
timeout 240 $NCU --set full --import-source no -k regex:wgm256 --launch-skip 2 -c 1 -o $L/wgm256 \
  $B/stagefit bench --preset gpt-oss-20b --tokens 8192 --routing uniform --format mxfp4 --budget device --tactic wgm256n128k64:4 --reps 3 --no-cublas > $L/ncu-run.txt 2>&1; echo "rc=$?" >> $L/ncu-run.txt
$NCU --import $L/wgm256.ncu-rep --page details > $L/details.txt 2>&1
$NCU --import $L/wgm256.ncu-rep --page raw --csv > $L/raw.csv 2>&1
$NCU --import $L/wgm256.ncu-rep --page source --print-source sass --csv > $L/sass.csv 2>&1
rm -f $L/wgm256.ncu-rep
tar -czf $OUT/logs.tgz -C /tmp logs3
tail -3 $L/ncu-run.txt
grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput|Issue Slots Busy|Registers Per|Achieved Occupancy|No Eligible|Active Warps Per|Eligible Warps|SM Frequency|L2 Hit|DRAM Through" $L/details.txt | head -30
python3 - <<'PY'
import csv
raw=list(csv.reader(open("/tmp/logs3/raw.csv")))
hdr=raw[0]; vals=raw[2] if len(raw)>2 else raw[1]
for i,h in enumerate(hdr):
    if ("pcsamp_warps_issue_stalled" in h and not h.endswith("_not_issued")) or "pipe_tensor" in h and "pct" in h:
        try:
            if float(vals[i].replace(",",""))>0: print(h, vals[i])
        except: pass
PY
