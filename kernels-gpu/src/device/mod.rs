//! The kernels, compiled only for `nvptx64-nvidia-cuda`.
//!
//! - [`ptx`]: one safe-as-possible wrapper per PTX instruction used;
//! - [`fp4`]: e2m1 and scale decoding in registers;
//! - [`scheduler`]: the tile table that maps a linear tile index to (group, m-tile, n-tile);
//! - [`tiles`]: what every grouped-GEMM family shares (the tile walk, the output scale, the
//!   epilogue's stores, plain or gated);
//! - [`activation`]: the gated activation, shared by the MoE kernel and the gated epilogue;
//! - [`gemm`]: the pipelined grouped GEMM of `Family::Mma`, generic over format, tile and STAGES;
//! - [`swap_ab`]: the same for `Family::SwapAb`, built for decode;
//! - `wgmma`: the same for `Family::Wgmma` (sm_90a only), built for prefill;
//! - [`moe`]: the MoE-layer kernels around the grouped GEMMs;
//! - [`weights`]: natural FP4 codes into the kernels' layout, on the device;
//! - [`kernels`]: the `extern "ptx-kernel"` entry points, one per (format, tactic, STAGES), one
//!   per MoE-layer kernel, and the weight packing.

mod activation;
mod fp4;
mod gemm;
mod kernels;
mod moe;
mod ptx;
mod scheduler;
mod swap_ab;
mod tiles;
mod weights;
#[cfg(stagefit_wgmma)]
mod wgmma;

/// A panic in device code cannot unwind or print: stop the kernel, which the host sees as a
/// launch failure. The kernels are written so that no panic path remains (ptxas checks find
/// any call that was not inlined).
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    ptx::trap()
}
