//! What the tools share: a random grouped-GEMM problem on the device, weight copies rotated
//! past L2, and event and graph timing.

use std::sync::Arc;

use cudarc::driver::sys::{CUevent_flags, CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use half::bf16;

use crate::error::{DriverContext, Error, Result};
use crate::gemm::{offsets_from_sizes, DeviceWeights, GroupedGemm, GroupedGemmArgs, TacticChoice, Variant};
use crate::moe::graph::check_capturable;
use crate::moe::kernels::MoeKernels;
use crate::tools::bench::{group_sizes, Routing, GRAPH_CALLS};
use crate::Fp4Format;

/// Weight copies to rotate over so that the experts one call touches (`active` of
/// `expert_bytes` each) are not in an L2 of `l2_bytes` when the next call reads them: the
/// copies together hold four times the L2 (at most 8 copies).
pub(crate) fn weight_copies_past_l2(l2_bytes: usize, active: usize, expert_bytes: usize) -> usize {
    (4 * l2_bytes).div_ceil((active * expert_bytes).max(1)).clamp(1, 8)
}

/// Captures [`GRAPH_CALLS`] calls `call(i)` into one graph and returns the median replay time
/// per call, microseconds: back-to-back calls, as decode runs them. `stream` must be one a
/// capture can record (`moe::graph::check_capturable`), or this is [`Error::Capture`].
pub(crate) fn graph_us_per_call(
    ctx: &Arc<CudaContext>,
    stream: &Arc<CudaStream>,
    reps: usize,
    mut call: impl FnMut(usize) -> Result<()>,
) -> Result<f64> {
    check_capturable(stream)?;
    stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED).during("capturing")?;
    let captured = (0..GRAPH_CALLS).try_for_each(&mut call);
    let graph = stream
        .end_capture(CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH)
        .during("instantiating the graph")?;
    captured?;
    let graph = graph.ok_or_else(|| Error::Capture("the capture recorded no work".into()))?;
    Ok(median_us(ctx, stream, reps, |_| graph.launch().during("replaying the graph"))? / GRAPH_CALLS as f64)
}

/// Median of `reps` event-timed runs of `f` after two warm-up runs, in microseconds.
pub(crate) fn median_us(
    ctx: &Arc<CudaContext>,
    stream: &Arc<CudaStream>,
    reps: usize,
    mut f: impl FnMut(usize) -> Result<()>,
) -> Result<f64> {
    let event = || ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)).during("creating an event");
    for i in 0..2 {
        f(i)?;
    }
    let mut times = Vec::with_capacity(reps);
    for i in 0..reps.max(1) {
        let (start, end) = (event()?, event()?);
        start.record(stream).during("recording an event")?;
        f(i)?;
        end.record(stream).during("recording an event")?;
        times.push(start.elapsed_ms(&end).during("reading an event")? as f64 * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// A random grouped-GEMM problem on the device, on MoE shapes: `tokens` tokens routed
/// uniformly to `top_k` of `groups` experts of `[n × k]` random weights, held in one or more
/// copies that successive calls rotate over.
pub(crate) struct RandomProblem {
    pub(crate) rows: usize,
    a: CudaSlice<bf16>,
    offsets: CudaSlice<u32>,
    weights: Vec<DeviceWeights>,
    c: CudaSlice<bf16>,
}

impl RandomProblem {
    /// The problem with one weight copy, or, given the device's `l2_bytes`, with
    /// [`weight_copies_past_l2`] copies, so that rotating calls read their weights from DRAM.
    pub(crate) fn new(
        kernels: &MoeKernels,
        stream: &Arc<CudaStream>,
        format: Fp4Format,
        (groups, top_k, tokens): (usize, usize, usize),
        (n, k): (usize, usize),
        seed: u64,
        past_l2_of: Option<usize>,
    ) -> Result<RandomProblem> {
        let sizes = group_sizes(groups, top_k, tokens, Routing::Uniform, seed);
        let rows = tokens * top_k;
        let active = sizes.iter().filter(|&&s| s > 0).count();
        let copies =
            past_l2_of.map_or(1, |l2| weight_copies_past_l2(l2, active, crate::fp4::weight_bytes(format, n * k)));
        let weights = (0..copies as u64)
            .map(|i| kernels.random_weights(stream, format, (groups, n, k), seed + 2 + i))
            .collect::<Result<_>>()?;
        Ok(RandomProblem {
            rows,
            a: fill_bf16(kernels, stream, rows.max(1) * k, seed + 1)?,
            offsets: stream.clone_htod(&offsets_from_sizes(&sizes)?).during("uploading offsets")?,
            weights,
            c: stream.alloc_zeros(rows.max(1) * n).during("allocating the output")?,
        })
    }

    /// Runs the grouped GEMM on it with `choice`, on weight copy `call % copies`.
    pub(crate) fn run(
        &mut self,
        gemm: &GroupedGemm,
        stream: &Arc<CudaStream>,
        choice: TacticChoice<'_>,
        call: usize,
    ) -> Result<Variant> {
        let args = GroupedGemmArgs {
            rows: self.rows,
            a: self.a.as_view(),
            offsets: self.offsets.as_view(),
            weights: self.weights[call % self.weights.len()].view(),
            c: self.c.as_view_mut(),
        };
        gemm.run(stream, args, choice)
    }

    /// The output buffer.
    pub(crate) fn output(&mut self) -> &mut CudaSlice<bf16> {
        &mut self.c
    }
}

pub(crate) fn fill_bf16(
    kernels: &MoeKernels,
    stream: &Arc<CudaStream>,
    len: usize,
    seed: u64,
) -> Result<CudaSlice<bf16>> {
    let mut bytes = stream.alloc_zeros::<u8>(2 * len).during("allocating")?;
    // Both bytes of each bf16 in 0x30..=0x3F: finite, positive, about 2^-31 to 2.
    kernels.fill(stream, &mut bytes, seed, 0x30, 16)?;
    // SAFETY: 2·len initialized bytes reinterpreted as len bf16 values; the byte slice is
    // dropped right after the copy.
    let view = unsafe { bytes.transmute::<bf16>(len) }.expect("length matches");
    let mut out = stream.alloc_zeros::<bf16>(len).during("allocating")?;
    stream.memcpy_dtod(&view, &mut out).during("copying")?;
    Ok(out)
}
