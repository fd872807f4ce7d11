//! Device side of stagefit.
//!
//! Two kinds of code live here:
//! - plain Rust that the host crate compiles too, so that host and kernel share one definition:
//!   the kernel parameter block ([`params`]), the FP4 format ids ([`format`]), the tile
//!   table ([`tactics`]), the shared-memory layout with its exact byte count ([`layout`]),
//!   the packed layout of FP4 codes in device memory ([`packing`]) and the router's ranking of
//!   logits ([`routing`]);
//! - the kernels themselves (`device`, only when built for `nvptx64-nvidia-cuda`), which
//!   `build.rs` of the root crate compiles to PTX for every shipped architecture.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![cfg_attr(
    target_arch = "nvptx64",
    feature(
        abi_ptx,
        asm_experimental_arch,
        stdarch_nvptx,
        core_intrinsics,
        gpu_intrinsics,
        gpu_launch_sized_workgroup_mem
    )
)]
#![cfg_attr(target_arch = "nvptx64", allow(internal_features))]

pub mod arch;
pub mod format;
pub mod layout;
pub mod packing;
pub mod params;
pub mod routing;
pub mod tactics;

#[cfg(target_arch = "nvptx64")]
mod device;
