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
pub use embedded::{kernel_name, module_ptx, moe_module_ptx};
pub use error::{Error, Result};
pub use gemm::{DeviceWeights, GroupedGemm, GroupedGemmArgs, TacticChoice, Variant};
pub use plan::find_tactic;
pub use stagefit_kernels::arch::Arch;
pub use stagefit_kernels::format::Fp4Format;
pub use stagefit_kernels::layout::{SmemLayout, MAX_GROUPS};
pub use stagefit_kernels::packing::{order_chunks, pack_codes, unpack_codes};
pub use stagefit_kernels::params::GroupedGemmParams;
pub use stagefit_kernels::tactics::{Family, Tactic, TileShape, TACTICS};
