//! The MoE-layer kernels of one context, loaded once, each behind a safe launcher that takes
//! typed buffers and checks their contexts and lengths against the stream and the shapes before
//! the launch.
//!
//! The kernels never index memory with device data they did not bound first (expert ids,
//! permuted rows and token indices are clamped to their ranges on the device), so any buffer
//! contents are memory-safe; wrong contents only give wrong values.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceSlice};
use cudarc::nvrtc::Ptx;
use half::bf16;
use stagefit_kernels::params::{
    row_blocks, FillParams, MoeParams, MOE_BLOCK, MOE_SCRATCH_BYTES, ROUTE_SCRATCH_BYTES, SMALL_ROUTE_ROWS,
};

use crate::embedded::moe_module_ptx;
use crate::error::{DriverContext, Error, Result};
use crate::gemm::DeviceWeights;
use crate::launch::{launch, programmatic, LaunchShape};
use crate::moe::config::MoeConfig;
use crate::{Arch, Fp4Format};

/// One MoE-layer kernel and how its grid is sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MoeOp {
    /// One warp per (token, expert).
    Router,
    /// One warp per token.
    TopK,
    /// The router's grid; its last block routes, sorts and gathers (T·k ≤ `SMALL_ROUTE_ROWS`).
    RouteSmall,
    /// One block per expert.
    Count,
    /// One block per expert.
    Scatter,
    /// One block per assignment.
    Gather,
    /// `row_blocks(I)` blocks per assignment.
    Activate,
    /// `row_blocks(H)` blocks per token.
    Combine,
}

impl MoeOp {
    const ALL: [MoeOp; 8] = [
        MoeOp::Router,
        MoeOp::TopK,
        MoeOp::RouteSmall,
        MoeOp::Count,
        MoeOp::Scatter,
        MoeOp::Gather,
        MoeOp::Activate,
        MoeOp::Combine,
    ];

    fn entry(self) -> &'static str {
        match self {
            MoeOp::Router => "stagefit_moe_router",
            MoeOp::TopK => "stagefit_moe_topk",
            MoeOp::RouteSmall => "stagefit_moe_route_small",
            MoeOp::Count => "stagefit_moe_count",
            MoeOp::Scatter => "stagefit_moe_scatter",
            MoeOp::Gather => "stagefit_moe_gather",
            MoeOp::Activate => "stagefit_moe_activate",
            MoeOp::Combine => "stagefit_moe_combine",
        }
    }

    /// The launch of `self` for the shapes in `p`.
    fn shape(self, p: &MoeParams) -> LaunchShape {
        let (t, e, k) = (p.tokens as usize, p.experts as usize, p.top_k as usize);
        let warps_per_block = MOE_BLOCK / 32;
        let (blocks, shared_bytes) = match self {
            MoeOp::Router => ((t * e).div_ceil(warps_per_block), 0),
            MoeOp::TopK => (t.div_ceil(warps_per_block), 0),
            MoeOp::RouteSmall => ((t * e).div_ceil(warps_per_block), ROUTE_SCRATCH_BYTES),
            MoeOp::Count | MoeOp::Scatter => (e, MOE_SCRATCH_BYTES),
            MoeOp::Gather => (t * k, 0),
            MoeOp::Activate => (t * k * row_blocks(p.inter as usize), 0),
            MoeOp::Combine => (t * row_blocks(p.hidden as usize), 0),
        };
        LaunchShape {
            blocks: blocks as u32,
            threads: MOE_BLOCK as u32,
            shared_bytes: shared_bytes as u32,
            programmatic: false,
        }
    }
}

/// The shapes and constants of one forward of `tokens` tokens through a layer (pointers unset).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MoeShape {
    base: MoeParams,
}

impl MoeShape {
    /// For `tokens` tokens of a layer shaped like `config` (validated, and with
    /// `tokens · top_k` within 32 bits: what a workspace that holds them guarantees).
    pub(crate) fn new(config: &MoeConfig, tokens: usize) -> MoeShape {
        let (activation, limit, alpha) = config.activation_ids();
        MoeShape {
            base: MoeParams {
                tokens: tokens as u32,
                experts: config.experts as u32,
                top_k: config.top_k as u32,
                hidden: config.hidden as u32,
                inter: config.intermediate as u32,
                renormalize: config.renormalize as u32,
                gate_up_layout: config.gate_up_layout_id(),
                activation,
                limit,
                alpha,
                ..MoeParams::default()
            },
        }
    }

    /// Assignments (routed rows): T·k.
    pub(crate) fn rows(&self) -> usize {
        self.base.tokens as usize * self.base.top_k as usize
    }

    fn dims(&self) -> (usize, usize, usize, usize, usize) {
        let p = &self.base;
        (p.tokens as usize, p.experts as usize, p.top_k as usize, p.hidden as usize, p.inter as usize)
    }
}

/// Refuses a buffer of another CUDA context than `stream`'s, or shorter than `needed` elements
/// (`needed` saturates, so an overflowing size is refused too).
fn holds<T>(stream: &CudaStream, buffer: &'static str, needed: usize, slice: &impl DeviceSlice<T>) -> Result<()> {
    let (ctx, own) = (slice.stream().context(), stream.context());
    if **ctx != **own {
        return Err(Error::Context { buffer, expected: own.ordinal(), actual: ctx.ordinal() });
    }
    if slice.len() < needed {
        return Err(Error::BufferTooSmall { buffer, needed, actual: slice.len() });
    }
    Ok(())
}

/// `a · b`, saturating (a size no buffer holds).
fn times(a: usize, b: usize) -> usize {
    a.saturating_mul(b)
}

/// The loaded MoE-layer kernels.
pub(crate) struct MoeKernels {
    /// The context the module is loaded in.
    ctx: Arc<CudaContext>,
    functions: Vec<(MoeOp, CudaFunction)>,
    fill: CudaFunction,
    /// Launch with programmatic dependent launch (`crate::launch`).
    programmatic: bool,
}

impl MoeKernels {
    /// Loads the MoE module for `arch` into `ctx`.
    pub(crate) fn load(ctx: &Arc<CudaContext>, arch: Arch) -> Result<MoeKernels> {
        let ptx =
            moe_module_ptx(arch).ok_or_else(|| Error::UnknownVariant(format!("no MoE PTX for {}", arch.name())))?;
        let module = ctx.load_module(Ptx::from_src(ptx)).during("loading the MoE kernels")?;
        let functions = MoeOp::ALL
            .iter()
            .map(|&op| Ok((op, module.load_function(op.entry()).during("finding an MoE kernel")?)))
            .collect::<Result<Vec<_>>>()?;
        let fill = module.load_function("stagefit_moe_fill").during("finding the fill kernel")?;
        Ok(MoeKernels { ctx: ctx.clone(), functions, fill, programmatic: arch.programmatic_launch() })
    }

    /// Programmatic dependent launch on or off (where the target has it; on by default there).
    pub(crate) fn set_programmatic(&mut self, on: bool, arch: Arch) {
        self.programmatic = on && arch.programmatic_launch();
    }

    /// Refuses a stream of another context than the module's.
    fn check_stream(&self, stream: &CudaStream) -> Result<()> {
        if **stream.context() != *self.ctx {
            let (expected, actual) = (self.ctx.ordinal(), stream.context().ordinal());
            return Err(Error::Context { buffer: "stream", expected, actual });
        }
        Ok(())
    }

    /// Launches `op` with `params`.
    ///
    /// # Safety
    /// Every pointer in `params` that `op` reads or writes is a live allocation of `stream`'s
    /// context (checked against the module's here), held by the caller's stream guards across
    /// the call, of at least the length [`MoeParams`] documents for the shapes in `params`.
    unsafe fn launch(&self, stream: &CudaStream, op: MoeOp, params: MoeParams) -> Result<()> {
        self.check_stream(stream)?;
        let function = &self.functions.iter().find(|(o, _)| *o == op).expect("every op is loaded").1;
        let rows = params.tokens as usize * params.top_k as usize;
        let shape = LaunchShape { programmatic: programmatic(self.programmatic, rows), ..op.shape(&params) };
        // SAFETY: the MoE entry points take one `MoeParams` and `MOE_BLOCK` threads with the
        // shared memory `MoeOp::shape` gives; the buffers are the caller's contract; the
        // kernels bound every index they read from device data.
        unsafe { launch(function, stream, shape, params, "launching an MoE kernel") }
    }

    /// `logits[t][e] = x[t] · router[e] + router_bias[e]`.
    pub(crate) fn router(
        &self,
        stream: &Arc<CudaStream>,
        s: &MoeShape,
        x: &impl DevicePtr<bf16>,
        router: &impl DevicePtr<bf16>,
        router_bias: &impl DevicePtr<f32>,
        logits: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        let (t, e, _, h, _) = s.dims();
        holds(stream, "x", times(t, h), x)?;
        holds(stream, "router", times(e, h), router)?;
        holds(stream, "router_bias", e, router_bias)?;
        holds(stream, "logits", times(t, e), logits)?;
        let (x, _g0) = x.device_ptr(stream);
        let (router_w, _g1) = router.device_ptr(stream);
        let (router_b, _g2) = router_bias.device_ptr(stream);
        let (logits, _g3) = logits.device_ptr_mut(stream);
        let p = MoeParams { x, router_w, router_b, logits, ..s.base };
        // SAFETY: the lengths were checked above; the guards hold the buffers.
        unsafe { self.launch(stream, MoeOp::Router, p) }
    }

    /// Each token's top-k experts (always below E) and combine weights.
    pub(crate) fn top_k(
        &self,
        stream: &Arc<CudaStream>,
        s: &MoeShape,
        logits: &impl DevicePtr<f32>,
        topk_ids: &mut impl DevicePtrMut<u32>,
        topk_w: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        let (t, e, k, _, _) = s.dims();
        holds(stream, "logits", times(t, e), logits)?;
        holds(stream, "topk_ids", times(t, k), topk_ids)?;
        holds(stream, "topk_w", times(t, k), topk_w)?;
        let (logits, _g0) = logits.device_ptr(stream);
        let (topk_ids, _g1) = topk_ids.device_ptr_mut(stream);
        let (topk_w, _g2) = topk_w.device_ptr_mut(stream);
        let p = MoeParams { logits, topk_ids, topk_w, ..s.base };
        // SAFETY: the lengths were checked above; the guards hold the buffers.
        unsafe { self.launch(stream, MoeOp::TopK, p) }
    }

    /// Whether `forward` routes `s`'s batch with [`MoeKernels::route_small`] (at most
    /// `SMALL_ROUTE_ROWS` assignments).
    pub(crate) fn routes_small(s: &MoeShape) -> bool {
        let (t, _, k, _, _) = s.dims();
        times(t, k) <= SMALL_ROUTE_ROWS
    }

    /// Router, top-k, the permutation and the gather of a small batch in one launch (see
    /// [`MoeKernels::routes_small`]): the same results as [`MoeKernels::router`],
    /// [`MoeKernels::top_k`], [`MoeKernels::permute`] and [`MoeKernels::gather`]. `counter` is
    /// the kernel's block counter: 0 before the launch, and again after it. Under programmatic
    /// launch the kernel reads the router weights and bias before it waits for the kernel before
    /// it: no stagefit kernel writes them (they come from the host); `x` is read after the wait.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn route_small(
        &self,
        stream: &Arc<CudaStream>,
        s: &MoeShape,
        (x, router, router_bias): (&impl DevicePtr<bf16>, &impl DevicePtr<bf16>, &impl DevicePtr<f32>),
        (logits, topk_ids, topk_w): (
            &mut impl DevicePtrMut<f32>,
            &mut impl DevicePtrMut<u32>,
            &mut impl DevicePtrMut<f32>,
        ),
        (counts, offsets, perm_src, perm_dst): (
            &mut impl DevicePtrMut<u32>,
            &mut impl DevicePtrMut<u32>,
            &mut impl DevicePtrMut<u32>,
            &mut impl DevicePtrMut<u32>,
        ),
        a_perm: &mut impl DevicePtrMut<bf16>,
        counter: &mut impl DevicePtrMut<u32>,
    ) -> Result<()> {
        let (t, e, k, h, _) = s.dims();
        let rows = times(t, k);
        if rows > SMALL_ROUTE_ROWS {
            return Err(Error::Shape {
                what: "tokens",
                value: t,
                requirement: "tokens · top_k at most SMALL_ROUTE_ROWS here",
            });
        }
        holds(stream, "x", times(t, h), x)?;
        holds(stream, "router", times(e, h), router)?;
        holds(stream, "router_bias", e, router_bias)?;
        holds(stream, "logits", times(t, e), logits)?;
        holds(stream, "topk_ids", rows, topk_ids)?;
        holds(stream, "topk_w", rows, topk_w)?;
        holds(stream, "counts", e, counts)?;
        holds(stream, "offsets", e + 1, offsets)?;
        holds(stream, "perm_src", rows, perm_src)?;
        holds(stream, "perm_dst", rows, perm_dst)?;
        holds(stream, "a_perm", times(rows, h), a_perm)?;
        holds(stream, "counter", 1, counter)?;
        let (x, _g0) = x.device_ptr(stream);
        let (router_w, _g1) = router.device_ptr(stream);
        let (router_b, _g2) = router_bias.device_ptr(stream);
        let (logits, _g3) = logits.device_ptr_mut(stream);
        let (topk_ids, _g4) = topk_ids.device_ptr_mut(stream);
        let (topk_w, _g5) = topk_w.device_ptr_mut(stream);
        let (counts, _g6) = counts.device_ptr_mut(stream);
        let (offsets, _g7) = offsets.device_ptr_mut(stream);
        let (perm_src, _g8) = perm_src.device_ptr_mut(stream);
        let (perm_dst, _g9) = perm_dst.device_ptr_mut(stream);
        let (a_perm, _g10) = a_perm.device_ptr_mut(stream);
        let (counter, _g11) = counter.device_ptr_mut(stream);
        let p = MoeParams {
            x,
            router_w,
            router_b,
            logits,
            topk_ids,
            topk_w,
            counts,
            offsets,
            perm_src,
            perm_dst,
            a_perm,
            counter,
            ..s.base
        };
        // SAFETY: the lengths were checked above (T·k within the kernel's limit); the guards
        // hold the buffers; the counter is 0 between launches (allocated zeroed, reset by the
        // last block of every launch, and launches on one stream do not overlap).
        unsafe { self.launch(stream, MoeOp::RouteSmall, p) }
    }

    /// The stable permutation of assignments by expert: `counts`, `offsets` (the grouped
    /// GEMMs' group offsets), `perm_src` and `perm_dst`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn permute(
        &self,
        stream: &Arc<CudaStream>,
        s: &MoeShape,
        topk_ids: &impl DevicePtr<u32>,
        counts: &mut impl DevicePtrMut<u32>,
        offsets: &mut impl DevicePtrMut<u32>,
        perm_src: &mut impl DevicePtrMut<u32>,
        perm_dst: &mut impl DevicePtrMut<u32>,
    ) -> Result<()> {
        let (t, e, k, _, _) = s.dims();
        let rows = times(t, k);
        holds(stream, "topk_ids", rows, topk_ids)?;
        holds(stream, "counts", e, counts)?;
        holds(stream, "offsets", e + 1, offsets)?;
        holds(stream, "perm_src", rows, perm_src)?;
        holds(stream, "perm_dst", rows, perm_dst)?;
        let (topk_ids, _g0) = topk_ids.device_ptr(stream);
        let (counts, _g1) = counts.device_ptr_mut(stream);
        let (offsets, _g2) = offsets.device_ptr_mut(stream);
        let (perm_src, _g3) = perm_src.device_ptr_mut(stream);
        let (perm_dst, _g4) = perm_dst.device_ptr_mut(stream);
        let p = MoeParams { topk_ids, counts, offsets, perm_src, perm_dst, ..s.base };
        // SAFETY: the lengths were checked above; the guards hold the buffers. Scatter's rows
        // stay below T·k because it ranks the same ids that count counted, on the same stream.
        unsafe {
            self.launch(stream, MoeOp::Count, p)?;
            self.launch(stream, MoeOp::Scatter, p)
        }
    }

    /// `a_perm[row] = x[token of perm_src[row]]`.
    pub(crate) fn gather(
        &self,
        stream: &Arc<CudaStream>,
        s: &MoeShape,
        x: &impl DevicePtr<bf16>,
        perm_src: &impl DevicePtr<u32>,
        a_perm: &mut impl DevicePtrMut<bf16>,
    ) -> Result<()> {
        let (t, _, k, h, _) = s.dims();
        holds(stream, "x", times(t, h), x)?;
        holds(stream, "perm_src", times(t, k), perm_src)?;
        holds(stream, "a_perm", times(times(t, k), h), a_perm)?;
        let (x, _g0) = x.device_ptr(stream);
        let (perm_src, _g1) = perm_src.device_ptr(stream);
        let (a_perm, _g2) = a_perm.device_ptr_mut(stream);
        let p = MoeParams { x, perm_src, a_perm, ..s.base };
        // SAFETY: the lengths were checked above; the guards hold the buffers.
        unsafe { self.launch(stream, MoeOp::Gather, p) }
    }

    /// `a2[row] = act(h1[row] + gate_up_bias[expert of row])`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn activate(
        &self,
        stream: &Arc<CudaStream>,
        s: &MoeShape,
        h1: &impl DevicePtr<bf16>,
        perm_src: &impl DevicePtr<u32>,
        topk_ids: &impl DevicePtr<u32>,
        gate_up_bias: &impl DevicePtr<f32>,
        a2: &mut impl DevicePtrMut<bf16>,
    ) -> Result<()> {
        let (t, e, k, _, i) = s.dims();
        let rows = times(t, k);
        holds(stream, "h1", times(rows, times(2, i)), h1)?;
        holds(stream, "perm_src", rows, perm_src)?;
        holds(stream, "topk_ids", rows, topk_ids)?;
        holds(stream, "gate_up_bias", times(e, times(2, i)), gate_up_bias)?;
        holds(stream, "a2", times(rows, i), a2)?;
        let (h1, _g0) = h1.device_ptr(stream);
        let (perm_src, _g1) = perm_src.device_ptr(stream);
        let (topk_ids, _g2) = topk_ids.device_ptr(stream);
        let (gate_up_bias, _g3) = gate_up_bias.device_ptr(stream);
        let (a2, _g4) = a2.device_ptr_mut(stream);
        let p = MoeParams { h1, perm_src, topk_ids, gate_up_bias, a2, ..s.base };
        // SAFETY: the lengths were checked above; the guards hold the buffers.
        unsafe { self.launch(stream, MoeOp::Activate, p) }
    }

    /// `out[t] = Σ_r topk_w[t][r] · (h2[perm_dst[t·k+r]] + down_bias[e_r])`. To be launched
    /// right after the down projection that writes `h2`: under programmatic launch the kernel
    /// reads `perm_dst`, `topk_ids`, `topk_w` and `down_bias` before it waits for the kernel
    /// before it, which must write none of them (everything before that kernel has finished
    /// by then: every stagefit kernel waits before it lets the next one launch).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn combine(
        &self,
        stream: &Arc<CudaStream>,
        s: &MoeShape,
        h2: &impl DevicePtr<bf16>,
        perm_dst: &impl DevicePtr<u32>,
        topk_ids: &impl DevicePtr<u32>,
        topk_w: &impl DevicePtr<f32>,
        down_bias: &impl DevicePtr<f32>,
        out: &mut impl DevicePtrMut<bf16>,
    ) -> Result<()> {
        let (t, e, k, h, _) = s.dims();
        let rows = times(t, k);
        holds(stream, "h2", times(rows, h), h2)?;
        holds(stream, "perm_dst", rows, perm_dst)?;
        holds(stream, "topk_ids", rows, topk_ids)?;
        holds(stream, "topk_w", rows, topk_w)?;
        holds(stream, "down_bias", times(e, h), down_bias)?;
        holds(stream, "out", times(t, h), out)?;
        let (h2, _g0) = h2.device_ptr(stream);
        let (perm_dst, _g1) = perm_dst.device_ptr(stream);
        let (topk_ids, _g2) = topk_ids.device_ptr(stream);
        let (topk_w, _g3) = topk_w.device_ptr(stream);
        let (down_bias, _g4) = down_bias.device_ptr(stream);
        let (out, _g5) = out.device_ptr_mut(stream);
        let p = MoeParams { h2, perm_dst, topk_ids, topk_w, down_bias, out, ..s.base };
        // SAFETY: the lengths were checked above; the guards hold the buffers.
        unsafe { self.launch(stream, MoeOp::Combine, p) }
    }

    /// Seeded random FP4 weights for `groups` experts of `[n × k]`, generated on the device:
    /// codes uniform over all 16 values, block scales chosen so that a dot product with unit
    /// inputs stays near unit size, expert scales 1.
    pub(crate) fn random_weights(
        &self,
        stream: &Arc<CudaStream>,
        format: Fp4Format,
        (groups, n, k): (usize, usize, usize),
        seed: u64,
    ) -> Result<DeviceWeights> {
        let mut codes = stream.alloc_zeros::<u8>(groups * n * k / 2).during("allocating weights")?;
        let mut scales = stream.alloc_zeros::<u8>(groups * k / format.scale_block() * n).during("allocating scales")?;
        self.fill(stream, &mut codes, seed, 0, 256)?;
        // e2m1 codes have an RMS of about 2.9; a scale near 0.8 / (2.9 · sqrt(k)) keeps a dot
        // product with unit inputs near unit size.
        let target = 0.8 / (2.9 * (k as f32).sqrt());
        let (lo, span) = match format {
            Fp4Format::Mxfp4 => ((target.log2().round() as i32 + 127) as u8, 2),
            Fp4Format::Nvfp4 => (crate::fp4::e4m3_encode_non_negative(target), 4),
        };
        self.fill(stream, &mut scales, seed ^ 0x5CA1E, lo, span)?;
        let expert_scales = stream.clone_htod(&vec![1.0f32; groups]).during("uploading expert scales")?;
        DeviceWeights::from_parts(format, (groups, n, k), codes, scales, expert_scales)
    }

    /// Fills `bytes` with `lo + hash(seed, i) % span` on the device.
    pub(crate) fn fill(
        &self,
        stream: &Arc<CudaStream>,
        bytes: &mut CudaSlice<u8>,
        seed: u64,
        lo: u8,
        span: u16,
    ) -> Result<()> {
        self.check_stream(stream)?;
        holds(stream, "bytes", 0, bytes)?;
        let len = bytes.len();
        let (ptr, _sync) = bytes.device_ptr_mut(stream);
        let params = FillParams { ptr, len: len as u64, seed, lo: lo as u32, span: span as u32 };
        let shape = LaunchShape {
            blocks: len.div_ceil(4 * MOE_BLOCK).clamp(1, 65536) as u32,
            threads: MOE_BLOCK as u32,
            shared_bytes: 0,
            programmatic: false,
        };
        // SAFETY: the fill kernel takes one `FillParams` and `MOE_BLOCK` threads, and writes the
        // `len` bytes at `ptr`: a live allocation of this context (cudarc allocations are
        // 256-byte aligned) that the guard holds.
        unsafe { launch(&self.fill, stream, shape, params, "launching the fill kernel") }
    }
}
