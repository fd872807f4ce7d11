//! # stagefit
//!
//! A pipelined FP4 grouped GEMM for Mixture-of-Experts layers that never asks the GPU for more
//! shared memory than the GPU it runs on has.
//!
//! Every tile configuration ("tactic") is compiled at several pipeline depths (STAGES). At run
//! time stagefit reads the device's per-block opt-in shared-memory limit (or takes a smaller
//! budget from the caller) and launches the deepest variant that fits, with the exact byte
//! count of the kernel's own layout ([`SmemLayout`], shared with the kernels).
//!
//! - [`plan`]: which STAGES each tactic can run at under a limit (eligibility);
//! - [`heuristic`]: which runnable tactic a problem prefers;
//! - [`gemm`]: weights on the device and the launch path ([`GroupedGemm`]);
//! - [`fp4`]: FP4 codecs and quantization; [`reference`]: the CPU reference;
//! - [`device`]: device limits read from the driver; [`bench`]: `stagefit bench`;
//!   [`tune`]: `stagefit tune` and the tuned-choice cache dispatch uses; [`selftest`]: random
//!   cases against the CPU reference (`stagefit selftest`); [`overhead`]: the host cost of a
//!   call, cold and steady, eager and in a CUDA graph (`stagefit overhead`);
//! - [`moe`]: MoE layers (router, permutation, activation, combine) around the grouped GEMM.

pub mod bench;
pub mod device;
mod embedded;
pub mod error;
pub mod fp4;
pub mod gemm;
pub mod heuristic;
pub mod moe;
pub mod overhead;
pub mod plan;
pub mod reference;
pub mod rng;
pub mod selftest;
pub mod tune;

pub use embedded::{kernel_name, module_ptx, moe_module_ptx};
pub use error::{Error, Result};
pub use gemm::{DeviceWeights, GroupedGemm, GroupedGemmArgs, TacticChoice, Variant};
pub use stagefit_kernels::arch::Arch;
pub use stagefit_kernels::format::Fp4Format;
pub use stagefit_kernels::layout::{SmemLayout, MAX_GROUPS};
pub use stagefit_kernels::packing::{pack_codes, unpack_codes};
pub use stagefit_kernels::params::GroupedGemmParams;
pub use stagefit_kernels::tactics::{Tactic, TileShape, TACTICS};
