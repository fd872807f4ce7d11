//! The one way stagefit launches a kernel: straight to the driver (nothing is allocated on the
//! call path), with the kernel's `#[repr(C)]` parameter block passed by value. Every kernel,
//! the grouped GEMM and the MoE-layer kernels alike, goes through [`launch`].
//!
//! On sm_90 and later a launch may be *programmatic* (programmatic dependent launch): its blocks
//! may be scheduled while the kernel before it on the stream is still finishing, and wait
//! (`griddepcontrol.wait`, which every stagefit kernel of those targets executes before it
//! touches memory that kernel may write) until that kernel has finished and its writes are
//! visible. Every stagefit kernel waits before it lets the next one launch, so everything
//! launched before the kernel just before has finished when a kernel starts. What the overlap
//! hides is the launch and block-scheduling latency between consecutive kernels; inside a CUDA
//! graph the dependency is captured as a programmatic edge.

use cudarc::driver::sys::{
    cuLaunchKernelEx, CUlaunchAttribute, CUlaunchAttributeID, CUlaunchAttributeValue, CUlaunchConfig,
};
use cudarc::driver::{CudaFunction, CudaStream};

use crate::error::{DriverContext, Result};

/// The most rows (tokens · top_k, or a grouped GEMM's rows) a call may have to be launched
/// programmatically. On the H100 (gpt-oss decode in a graph, `docs/perf-notes.md` v9) it gained
/// 1-2 % at batch 1 and 8 (4 and 32 rows) and cost 1-12 % from batch 32 (128 rows) on, where
/// the early-resident blocks of the next kernel slow the GEMMs; so larger calls launch the
/// ordinary way.
pub(crate) const PROGRAMMATIC_MAX_ROWS: usize = 32;

/// Whether a call of `rows` rows launches programmatically, where the launcher has it `enabled`.
pub(crate) fn programmatic(enabled: bool, rows: usize) -> bool {
    enabled && rows <= PROGRAMMATIC_MAX_ROWS
}

/// Grid, block and dynamic shared memory of one launch (1-D grids and blocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LaunchShape {
    /// Blocks.
    pub blocks: u32,
    /// Threads per block.
    pub threads: u32,
    /// Dynamic shared memory per block, in bytes.
    pub shared_bytes: u32,
    /// Launch with programmatic stream serialization (see the module docs); only for kernels
    /// built for a target whose [`crate::Arch::programmatic_launch`] is true.
    pub programmatic: bool,
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
/// - `shape.programmatic` only for a kernel that executes `griddepcontrol.wait` (the kernels of
///   a target whose `programmatic_launch()` is true) before it touches memory the kernel before
///   it on the stream may still write: at its first instruction, or after reading only what
///   the caller knows that kernel leaves alone (`GroupedGemmParams::weights_before_wait`; the
///   router weights of `route_small`; the routing results and bias of `combine`, launched right
///   after the down GEMM).
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
    let mut attribute = CUlaunchAttribute {
        id: CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION,
        pad: [0; 4],
        value: CUlaunchAttributeValue { programmaticStreamSerializationAllowed: 1 },
    };
    let config = CUlaunchConfig {
        gridDimX: shape.blocks,
        gridDimY: 1,
        gridDimZ: 1,
        blockDimX: shape.threads,
        blockDimY: 1,
        blockDimZ: 1,
        sharedMemBytes: shape.shared_bytes,
        hStream: stream.cu_stream(),
        attrs: &mut attribute,
        numAttrs: u32::from(shape.programmatic),
    };
    // SAFETY: the caller's contract above; `kernel_args` holds one pointer to the parameter
    // block and `config` one attribute (used only when `numAttrs` is 1); both outlive the call
    // (the driver copies them before returning).
    unsafe { cuLaunchKernelEx(&config, function.cu_function(), kernel_args.as_mut_ptr(), std::ptr::null_mut()) }
        .result()
        .during(what)
}
