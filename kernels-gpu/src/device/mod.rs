//! The kernels, compiled only for `nvptx64-nvidia-cuda`.
//!
//! - [`ptx`]: one safe-as-possible wrapper per PTX instruction used;
//! - [`fp4`]: e2m1 and scale decoding in registers;
//! - [`scheduler`]: the tile table that maps a linear tile index to (group, m-tile, n-tile);
//! - [`gemm`]: the pipelined grouped GEMM, generic over format, tile and STAGES;
//! - [`moe`]: the MoE-layer kernels around the grouped GEMMs;
//! - [`kernels`]: the `extern "ptx-kernel"` entry points, one per (format, tactic, STAGES), and
//!   one per MoE-layer kernel.

mod fp4;
mod gemm;
mod kernels;
mod moe;
mod ptx;
mod scheduler;

/// A panic in device code cannot unwind or print: stop the kernel, which the host sees as a
/// launch failure. The kernels are written so that no panic path remains (ptxas checks find
/// any call that was not inlined).
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    ptx::trap()
}
