//! What the tools share: a random grouped-GEMM problem on the device and event timing.

use std::sync::Arc;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use half::bf16;

use crate::error::{DriverContext, Result};
use crate::gemm::{offsets_from_sizes, DeviceWeights, GroupedGemm, GroupedGemmArgs, TacticChoice, Variant};
use crate::moe::kernels::MoeKernels;
use crate::tools::bench::{group_sizes, Routing};
use crate::Fp4Format;

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
/// uniformly to `top_k` of `groups` experts of `[n × k]` random weights.
pub(crate) struct RandomProblem {
    pub(crate) rows: usize,
    a: CudaSlice<bf16>,
    offsets: CudaSlice<u32>,
    weights: DeviceWeights,
    c: CudaSlice<bf16>,
}

impl RandomProblem {
    pub(crate) fn new(
        kernels: &MoeKernels,
        stream: &Arc<CudaStream>,
        format: Fp4Format,
        (groups, top_k, tokens): (usize, usize, usize),
        (n, k): (usize, usize),
        seed: u64,
    ) -> Result<RandomProblem> {
        let sizes = group_sizes(groups, top_k, tokens, Routing::Uniform, seed);
        let rows = tokens * top_k;
        Ok(RandomProblem {
            rows,
            a: fill_bf16(kernels, stream, rows.max(1) * k, seed + 1)?,
            offsets: stream.clone_htod(&offsets_from_sizes(&sizes)?).during("uploading offsets")?,
            weights: kernels.random_weights(stream, format, (groups, n, k), seed + 2)?,
            c: stream.alloc_zeros(rows.max(1) * n).during("allocating the output")?,
        })
    }

    /// Runs the grouped GEMM on it with `choice`.
    pub(crate) fn run(
        &mut self,
        gemm: &GroupedGemm,
        stream: &Arc<CudaStream>,
        choice: TacticChoice<'_>,
    ) -> Result<Variant> {
        let args = GroupedGemmArgs {
            rows: self.rows,
            a: self.a.as_view(),
            offsets: self.offsets.as_view(),
            weights: self.weights.view(),
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
