#!/usr/bin/env python3
"""triton_kernels' MoE matmul (MXFP4 weights x bf16 activations), the way vLLM calls it on
Hopper, on the gpt-oss problems `stagefit bench` times, with the same routing and the same
timing: back-to-back calls captured in one CUDA graph over weight copies rotated past L2, median
time per call. Run it on the GPU machine in the same session as `stagefit bench --timing graph`
to get same-run ratios (issue 11).

triton_kernels is not on PyPI: pass the folder that holds its `triton_kernels` package with
--triton-kernels (vLLM's wheels vendor a copy at vllm/third_party/triton_kernels; the one in
vLLM 0.33.0 ran on triton 3.6), or have it importable.

Projections: gate_up (activations gathered by token, as in the engine), down (the grouped GEMM
alone, rows already in expert order: what stagefit bench times) and down_scatter (down with
the engine's scatter and gate weighting).
"""
import argparse
import json
import os
import statistics
import sys

M64 = (1 << 64) - 1
CALLS = 20          # calls per graph, as stagefit's GRAPH_CALLS
COPIES = 6          # 1 token reads 4 experts (35 MB on gpt-oss gate_up): 6 copies > 4x a 50 MB L2
PRESETS = {"gpt-oss-20b": 32, "gpt-oss-120b": 128}
HIDDEN = INTERMEDIATE = 2880
TOP_K = 4


def stagefit_routing(experts, top_k, tokens, seed):
    """The experts each token picks under stagefit bench's uniform routing
    (`tools::bench::group_sizes` with its SplitMix64), so both sides run the same groups."""
    state = seed

    def next_u64():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    picks = []
    for _ in range(tokens):
        chosen = []
        while len(chosen) < top_k:
            x = float(next_u64() >> 40) / float(1 << 24) * float(experts - len(chosen))
            pick = None
            for e in range(experts):
                if e in chosen:
                    continue
                x -= 1.0
                if x <= 0.0:
                    pick = e
                    break
            if pick is None:
                pick = max(e for e in range(experts) if e not in chosen)
            chosen.append(pick)
        picks.append(chosen)
    return picks


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triton-kernels", help="folder holding the triton_kernels package")
    parser.add_argument("--tokens", default="1,8,32,128")
    parser.add_argument("--json", help="write the rows as JSON to this file")
    args = parser.parse_args()
    if args.triton_kernels:
        sys.path.insert(0, args.triton_kernels)

    import torch
    import triton_kernels.matmul_ogs_details.opt_flags as opt_flags
    from triton_kernels.matmul_ogs import FlexCtx, PrecisionConfig, matmul_ogs
    from triton_kernels.numerics import InFlexData
    from triton_kernels.routing import routing
    from triton_kernels.tensor import FP4, convert_layout, wrap_torch_tensor
    from triton_kernels.tensor_details import layout

    dev = "cuda"
    torch.manual_seed(0)
    opt_flags.update_opt_flags_constraints({"split_k": 1})  # as vLLM on sm_90

    def weights(experts, n, k):
        """COPIES copies of random MXFP4 weights in the Hopper layouts vLLM converts to."""
        out = []
        for _ in range(COPIES):
            codes = torch.randint(0, 256, (experts, n, k // 2), dtype=torch.uint8, device=dev)
            scales = torch.randint(118, 124, (experts, n, k // 32), dtype=torch.uint8, device=dev)
            scales = torch.nn.functional.pad(scales, (0, -scales.shape[-1] % 4))  # vLLM pads K-blocks to 4
            codes, scales = codes.transpose(-2, -1), scales.transpose(-2, -1)
            value_layout, value_opts = layout.make_default_matmul_mxfp4_w_layout(mx_axis=1)
            scale_layout, scale_opts = layout.make_default_matmul_mxfp4_w_scale_layout(mx_axis=1, num_warps=8)
            w = convert_layout(wrap_torch_tensor(codes, dtype=FP4), value_layout, **value_opts)
            s = convert_layout(wrap_torch_tensor(scales), scale_layout, **scale_opts)
            out.append((w, PrecisionConfig(weight_scale=s, flex_ctx=FlexCtx(rhs_data=InFlexData()))))
        return out

    def graph_us(calls):
        side = torch.cuda.Stream()
        with torch.cuda.stream(side):
            for call in calls[:3]:
                call()  # compiles
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for i in range(CALLS):
                calls[i % len(calls)]()
        for _ in range(3):
            graph.replay()
        torch.cuda.synchronize()
        times = []
        for _ in range(15):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1000 / CALLS)
        return statistics.median(times)

    rows = []
    for preset, experts in PRESETS.items():
        gate_up = weights(experts, 2 * INTERMEDIATE, HIDDEN)
        down = weights(experts, HIDDEN, INTERMEDIATE)
        for projection, ws in (("gate_up", gate_up), ("down", down), ("down_scatter", down)):
            for tokens in map(int, args.tokens.split(",")):
                logits = torch.zeros(tokens, experts)
                for t, chosen in enumerate(stagefit_routing(experts, TOP_K, tokens, 7 + tokens)):
                    logits[t, chosen] = torch.tensor([4.0, 3.0, 2.0, 1.0])
                rdata, gather, scatter = routing(logits.to(dev), TOP_K)
                if projection == "gate_up":
                    x = torch.randn(tokens, HIDDEN, device=dev, dtype=torch.bfloat16)
                    calls = [lambda w=w, pc=pc: matmul_ogs(x, w, None, rdata, gather_indx=gather, precision_config=pc)
                             for w, pc in ws]
                elif projection == "down":
                    x = torch.randn(tokens * TOP_K, INTERMEDIATE, device=dev, dtype=torch.bfloat16)
                    calls = [lambda w=w, pc=pc: matmul_ogs(x, w, None, rdata, precision_config=pc) for w, pc in ws]
                else:
                    x = torch.randn(tokens * TOP_K, INTERMEDIATE, device=dev, dtype=torch.bfloat16)
                    calls = [lambda w=w, pc=pc: matmul_ogs(x, w, None, rdata, scatter_indx=scatter, precision_config=pc,
                                                           gammas=rdata.gate_scal) for w, pc in ws]
                us = graph_us(calls)
                rows.append({"preset": preset, "projection": projection, "tokens": tokens, "triton_graph_us": us})
                print(f"{preset:13s} {projection:12s} T={tokens:4d} triton_kernels graph {us:8.1f} us", flush=True)
        del gate_up, down
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
