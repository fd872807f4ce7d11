"""The issue 14 demo table from moe-demo --json files: tokens/s / ms per step / % of the copy
bandwidth floor, µs per layer and the ratio to the triton_kernels layer of the issue's table."""
import json, sys
L = sys.argv[1]
COPY_GBS = 2990.0
TRITON = {"gpt-oss-20b": {1: 97.3, 8: 175.9, 32: 224.4, 128: 303.9, 512: 468.2},
          "gpt-oss-120b": {1: 99.9, 8: 217.4, 32: 394.9, 128: 660.1, 512: 1019.5}}
print("| preset | batch | graph, 232448 | eager, 232448 | graph, 101376 | eager, 101376 | layer µs (graph, full) | ÷ triton_kernels layer | 101376 keeps |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for p in ["gpt-oss-120b", "gpt-oss-20b"]:
    for b in [1, 8, 32, 128]:
        cells, d = [], {}
        for budget in [232448, 101376]:
            for mode in ["graph", "eager"]:
                try:
                    j = json.load(open(f"{L}/demo-{p}-b{b}-{mode}-{budget}.json"))
                except Exception:
                    cells.append("?"); continue
                dec = j["decode"]; steps = 128
                d[(mode, budget)] = (j, dec)
                cells.append(f'{dec["tokens_per_s"]:.0f} / {dec["ms"] / steps:.3f} / {100 * dec["weight_gb_s"] / COPY_GBS:.0f} %')
        j, dec = d[("graph", 232448)]
        us = dec["ms"] / 128 * 1e3 / j["layers"]
        keeps = min(d[(m, 101376)][1]["tokens_per_s"] / d[(m, 232448)][1]["tokens_per_s"] for m in ["graph", "eager"])
        print(f"| {p} | {b} | " + " | ".join(cells) + f" | {us:.1f} | {us / TRITON[p][b]:.2f} | {100 * keeps:.1f} % |")
        if b == 1:
            pre = j["prefill"]; us = pre["ms"] * 1e3 / j["layers"]
            print(f'| {p} | 512-token prefill | {pre["tokens_per_s"]:.0f} tokens/s, {pre["ms"]:.2f} ms | | | | {us:.1f} | {us / TRITON[p][512]:.2f} | |')
