//! The one way stagefit launches a kernel: straight to the driver (nothing is allocated on the
//! call path), with the kernel's `#[repr(C)]` parameter block passed by value. Every kernel,
//! the grouped GEMM and the MoE-layer kernels alike, goes through [`launch`].

use cudarc::driver::{CudaFunction, CudaStream};

use crate::error::{DriverContext, Result};

/// Grid, block and dynamic shared memory of one launch (1-D grids and blocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LaunchShape {
    /// Blocks.
    pub blocks: u32,
    /// Threads per block.
    pub threads: u32,
    /// Dynamic shared memory per block, in bytes.
    pub shared_bytes: u32,
}

/// Launches `function` on `stream` with `params` as its only parameter; `what` names the
/// kernel in a driver error.
///
/// # Safety
/// - `function` takes exactly one parameter, a `P` by value: `P` is `#[repr(C)]`, holds only
///   integers and floats, and is the type the kernel declares.
/// - Every device address in `params` belongs to `stream`'s context and addresses an allocation
///   that holds at least what the kernel reads or writes for the shapes in `params` (for any
///   contents of the device data it reads), and stays alive, with no other access, until the
///   kernel has finished: the caller holds the buffers' stream guards (`device_ptr`) across
///   the call.
/// - `shape.threads` is the block size the kernel was written for, and `shape.shared_bytes`
///   is at least the dynamic shared memory it uses and within the function's
///   `MAX_DYNAMIC_SHARED_SIZE_BYTES` attribute.
pub(crate) unsafe fn launch<P: Copy>(
    function: &CudaFunction,
    stream: &CudaStream,
    shape: LaunchShape,
    params: P,
    what: &'static str,
) -> Result<()> {
    if shape.blocks == 0 {
        return Ok(());
    }
    stream.context().bind_to_thread().during("binding the context")?;
    let mut params = params;
    let mut kernel_args = [(&mut params as *mut P).cast::<std::ffi::c_void>()];
    // SAFETY: the caller's contract above; `kernel_args` holds one pointer to the parameter
    // block, which outlives the call (the driver copies it before returning).
    unsafe {
        cudarc::driver::result::launch_kernel(
            function.cu_function(),
            (shape.blocks, 1, 1),
            (shape.threads, 1, 1),
            shape.shared_bytes,
            stream.cu_stream(),
            &mut kernel_args,
        )
    }
    .during(what)
}
