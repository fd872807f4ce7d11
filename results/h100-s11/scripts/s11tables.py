#!/usr/bin/env python3
"""Issue 11 and 12 tables from one run: stagefit bench JSON (budgets device and 101376, graph
timing) and scripts/triton-kernels-baseline.py JSON. Usage: s11tables.py BENCH.json TRITON.json"""
import json, sys
bench = json.load(open(sys.argv[1]))["rows"]
triton = {(r["preset"], r["projection"], r["tokens"]): r["triton_graph_us"] for r in json.load(open(sys.argv[2]))}
TORCH = {  # issue 12's torch bf16 grouped_mm times (not re-measured)
    ("gpt-oss-20b", "gate_up"): (420.3, 631.4, 1947.8), ("gpt-oss-20b", "down"): (221.2, 306.4, 985.7),
    ("gpt-oss-120b", "gate_up"): (1615.7, 1647.6, 2718.5), ("gpt-oss-120b", "down"): (823.0, 833.1, 1472.6)}
full_budget = max(r["budget_bytes"] for r in bench)
rows = {}
for r in bench:
    rows[(r["preset"], r["projection"], r["tokens"], r["format"], r["budget_bytes"] == full_budget)] = r
presets = ["gpt-oss-20b", "gpt-oss-120b"]
projs = ["gate_up", "down"]
for fmt in ["mxfp4", "nvfp4"]:
    print(f"\n## Issue 11, {fmt}, full budget: single / graph µs (graph ÷ triton_kernels MXFP4 graph, % copy BW at graph timing; 101376 keeps)")
    print("| preset | projection | triton 1 / 8 / 32 / 128 µs | 1 | 8 | 32 | 128 |\n|---|---|---|---:|---:|---:|---:|")
    met = 0
    for p in presets:
        for j in projs:
            tr = [triton.get((p, j, t)) for t in (1, 8, 32, 128)]
            cells = []
            for t, tt in zip((1, 8, 32, 128), tr):
                r = rows.get((p, j, t, fmt, True)); s = rows.get((p, j, t, fmt, False))
                if not r or not tt: cells.append("-"); continue
                ratio = r["graph_us"] / tt; met += ratio <= 0.9
                keep = 100 * r["graph_us"] / s["graph_us"] if s else float("nan")
                cells.append(f"{r['time_us']:.1f} / {r['graph_us']:.1f} ({ratio:.2f}×, {r['graph_pct_copy_bw']:.0f} %; {keep:.0f} %) {r['tactic']}:{r['stages']}")
            print(f"| {p} | {j} | {' / '.join(f'{x:.1f}' if x else '-' for x in tr)} | " + " | ".join(cells) + " |")
    print(f"cells at or below 0.90x: {met} of 16")
for fmt in ["mxfp4", "nvfp4"]:
    print(f"\n## Issue 12, {fmt}")
    print("| preset | proj | T | tactic | single µs | graph µs | TFLOP/s | triton µs | torch µs (issue) | ratio | 101376 graph µs | 101376 keeps |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in presets:
        for j in projs:
            for i, t in enumerate((512, 2048, 8192)):
                r = rows.get((p, j, t, fmt, True)); s = rows.get((p, j, t, fmt, False)); tt = triton.get((p, j, t))
                if not r or not tt: continue
                m, n, k = r["shape"]
                tf = 2 * m * n * k / r["graph_us"] / 1e6
                torch = TORCH[(p, j)][i]
                ratio = r["graph_us"] / min(tt, torch)
                keep = 100 * r["graph_us"] / s["graph_us"] if s else float("nan")
                print(f"| {p} | {j} | {t} | {r['tactic']} S={r['stages']} | {r['time_us']:.1f} | {r['graph_us']:.1f} | {tf:.0f} | {tt:.1f} | {torch:.1f} | {ratio:.2f} | {s['graph_us'] if s else float('nan'):.1f} | {keep:.0f} % |")
