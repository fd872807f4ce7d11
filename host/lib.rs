//! # stagefit
//!
//! A pipelined FP4 grouped GEMM for Mixture-of-Experts layers that never asks the GPU for more
//! shared memory than the GPU it runs on has.
//!
//! Every tile configuration ("tactic") is compiled at several pipeline depths (STAGES). At run
//! time stagefit reads the device's per-block opt-in shared-memory limit (or takes a smaller
//! budget from the caller) and chooses among the variants that fit (by a heuristic or a tuned
//! cache), with the exact byte count of the kernel's own layout ([`SmemLayout`], shared with
//! the kernels).
//!
//! The library is layered; each layer uses only those below it (`docs/architecture.md`):
//! - [`device`]: device limits read from the driver; [`plan`]: which STAGES each tactic can
//!   run at under a limit (eligibility); [`heuristic`]: which runnable tactic a problem prefers;
//!   [`tuned`]: the measured-fastest choices, cached;
//! - [`gemm`]: weights on the device, validation, selection and the launch of the grouped GEMM
//!   ([`GroupedGemm`]), through the one launch helper every kernel uses;
//! - [`fp4`]: FP4 codecs and quantization; [`reference`](mod@reference): the CPU reference;
//! - [`moe`]: MoE layers (router, permutation, activation, combine) around the grouped GEMM;
//! - [`tools`]: `stagefit bench`, `tune`, `selftest` and `overhead`, built on all of the above.
//!
//! # A grouped GEMM
//! Three experts' weights quantized to MXFP4 on the host, eight activation rows routed to them
//! (3, 0 and 5 rows), run on device 0 and compared with the CPU reference (`examples/` has more:
//! views into larger buffers, weights packed on the device, an MoE layer, candle):
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use half::bf16;
//! use stagefit::{DeviceWeights, Fp4Format, GroupedGemm, GroupedGemmArgs, TacticChoice};
//!
//! let (n, k) = (256, 512);
//! let offsets = stagefit::gemm::offsets_from_sizes(&[3, 0, 5])?;
//! let weights = stagefit::fp4::quantize(Fp4Format::Mxfp4, 3, n, k, &vec![0.01; 3 * n * k])?;
//! let a = vec![bf16::ONE; 8 * k];
//!
//! let ctx = stagefit::device::context(0)?;
//! let stream = ctx.default_stream();
//! let gemm = GroupedGemm::new(&ctx, None)?; // or Some(101376): a budget below the device's
//! let w = DeviceWeights::upload(&stream, &weights)?;
//! let (a_dev, offsets_dev) = (stream.clone_htod(&a)?, stream.clone_htod(&offsets)?);
//! let mut c = stream.alloc_zeros::<bf16>(8 * n)?;
//! let args = GroupedGemmArgs {
//!     rows: 8,
//!     a: a_dev.as_view(),
//!     offsets: offsets_dev.as_view(),
//!     weights: w.view(),
//!     c: c.as_view_mut(),
//! };
//! let variant = gemm.run(&stream, args, TacticChoice::Auto)?;
//! println!("{} at STAGES={}: {} bytes of shared memory", variant.tactic.name, variant.stages, variant.smem_bytes());
//! let c = stream.clone_dtoh(&c)?;
//! # Ok(())
//! # }
//! ```
//!
//! # What fits a device
//! Planning needs no GPU: at the 101376 bytes a DGX Spark (sm_121a) gives a block, every tactic
//! compiled for it still runs, at fewer STAGES where it must (the wgmma family is Hopper's
//! alone).
//! ```
//! use stagefit::plan::StagePolicy;
//! use stagefit::Arch;
//!
//! let plans = StagePolicy::RunTime.plan_all(Arch::Sm121a, 101_376);
//! for p in &plans {
//!     assert_eq!(p.runnable(), Arch::Sm121a.runs(p.tactic.tile.family), "{}", p.tactic.name);
//!     assert!(p.smem_bytes().is_none_or(|bytes| bytes <= 101_376), "{}", p.tactic.name);
//! }
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

pub mod device;
mod embedded;
pub mod error;
mod files;
pub mod fp4;
pub mod gemm;
pub mod heuristic;
mod launch;
pub mod moe;
pub mod plan;
pub mod reference;
pub mod rng;
pub mod tools;
pub mod tuned;

/// The CUDA driver bindings stagefit's API speaks (contexts, streams, device buffers), so that
/// callers use the same version.
pub use cudarc;
pub use embedded::{kernel_name, module_ptx, moe_module_ptx, weights_module_ptx};
pub use error::{Error, Result};
pub use gemm::{DeviceWeights, GroupedGemm, GroupedGemmArgs, TacticChoice, Variant, WeightsShape, WeightsView};
pub use plan::find_tactic;
pub use stagefit_kernels::arch::Arch;
pub use stagefit_kernels::format::Fp4Format;
pub use stagefit_kernels::layout::{SmemLayout, MAX_GROUPS};
pub use stagefit_kernels::packing::{order_chunks, pack_codes, unpack_codes};
pub use stagefit_kernels::params::GroupedGemmParams;
pub use stagefit_kernels::tactics::{Family, Tactic, TileShape, TACTICS};
