//! The MoE-layer kernels of one context, loaded once, with their launch shapes.

use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtrMut, DeviceRepr, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use stagefit_kernels::params::{FillParams, MoeParams, MOE_BLOCK, MOE_SCRATCH_BYTES};

use crate::embedded::moe_module_ptx;
use crate::error::{DriverContext, Error, Result};
use crate::gemm::DeviceWeights;
use crate::{Arch, Fp4Format};

#[repr(transparent)]
struct MoeArgs(MoeParams);
// SAFETY: `MoeParams` is `#[repr(C)]`, `Copy`, and holds only integers and floats.
unsafe impl DeviceRepr for MoeArgs {}

#[repr(transparent)]
struct FillArgs(FillParams);
// SAFETY: `FillParams` is `#[repr(C)]`, `Copy`, and holds only integers.
unsafe impl DeviceRepr for FillArgs {}

/// One MoE-layer kernel and how its grid is sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MoeOp {
    /// One warp per (token, expert).
    Router,
    /// One warp per token.
    TopK,
    /// One block per expert.
    Count,
    /// One block per expert.
    Scatter,
    /// One block per assignment.
    Gather,
    /// One block per assignment.
    Activate,
    /// One block per token.
    Combine,
}

impl MoeOp {
    const ALL: [MoeOp; 7] =
        [MoeOp::Router, MoeOp::TopK, MoeOp::Count, MoeOp::Scatter, MoeOp::Gather, MoeOp::Activate, MoeOp::Combine];

    fn entry(self) -> &'static str {
        match self {
            MoeOp::Router => "stagefit_moe_router",
            MoeOp::TopK => "stagefit_moe_topk",
            MoeOp::Count => "stagefit_moe_count",
            MoeOp::Scatter => "stagefit_moe_scatter",
            MoeOp::Gather => "stagefit_moe_gather",
            MoeOp::Activate => "stagefit_moe_activate",
            MoeOp::Combine => "stagefit_moe_combine",
        }
    }

    /// (blocks, dynamic shared bytes) for these params.
    fn grid(self, p: &MoeParams) -> (usize, usize) {
        let (t, e, k) = (p.tokens as usize, p.experts as usize, p.top_k as usize);
        let warps_per_block = MOE_BLOCK / 32;
        match self {
            MoeOp::Router => ((t * e).div_ceil(warps_per_block), 0),
            MoeOp::TopK => (t.div_ceil(warps_per_block), 0),
            MoeOp::Count | MoeOp::Scatter => (e, MOE_SCRATCH_BYTES),
            MoeOp::Gather | MoeOp::Activate => (t * k, 0),
            MoeOp::Combine => (t, 0),
        }
    }
}

/// The loaded MoE-layer kernels.
pub(crate) struct MoeKernels {
    functions: Vec<(MoeOp, CudaFunction)>,
    fill: CudaFunction,
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
        Ok(MoeKernels { functions, fill })
    }

    /// Launches `op` on `stream`.
    ///
    /// # Safety
    /// Every pointer in `params` that `op` reads or writes must be a live allocation of this
    /// context of at least the size [`MoeParams`] documents for the shapes in `params`, and
    /// the shapes must have passed [`crate::moe::MoeConfig::validate`].
    pub(crate) unsafe fn launch(&self, stream: &Arc<CudaStream>, op: MoeOp, params: &MoeParams) -> Result<()> {
        let (blocks, smem) = op.grid(params);
        if blocks == 0 {
            return Ok(());
        }
        let function = &self.functions.iter().find(|(o, _)| *o == op).expect("every op is loaded").1;
        let cfg = LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (MOE_BLOCK as u32, 1, 1),
            shared_mem_bytes: smem as u32,
        };
        let args = MoeArgs(*params);
        let mut launch = stream.launch_builder(function);
        launch.arg(&args);
        launch.launch(cfg).during("launching an MoE kernel")?;
        Ok(())
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
        let len = bytes.len();
        let (ptr, _sync) = bytes.device_ptr_mut(stream);
        let args = FillArgs(FillParams { ptr, len: len as u64, seed, lo: lo as u32, span: span as u32 });
        let blocks = len.div_ceil(4 * MOE_BLOCK).clamp(1, 65536) as u32;
        let cfg = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (MOE_BLOCK as u32, 1, 1), shared_mem_bytes: 0 };
        let mut launch = stream.launch_builder(&self.fill);
        launch.arg(&args);
        // SAFETY: `ptr` addresses `len` bytes of a live allocation (cudarc allocations are
        // 256-byte aligned), which is all the fill kernel writes.
        unsafe { launch.launch(cfg) }.during("launching the fill kernel")?;
        Ok(())
    }
}
