//! What stagefit needs to know about a device, read from the driver.

use std::sync::Arc;

use cudarc::driver::sys::CUdevice_attribute as Attr;
use cudarc::driver::CudaContext;
use serde::Serialize;

use crate::error::{DriverContext, Error, Result};
use crate::Arch;

/// Whether the CUDA driver library can be loaded on this machine. Built without the
/// `dynamic-loading` feature, libcuda was linked (or is loaded as another crate in the build
/// chose): this says true and a missing driver shows up as the first call's error.
pub fn driver_present() -> bool {
    #[cfg(feature = "dynamic-loading")]
    // SAFETY: only tries to open libcuda; it runs no driver call.
    let present = unsafe { cudarc::driver::sys::is_culib_present() };
    #[cfg(not(feature = "dynamic-loading"))]
    let present = true;
    present
}

/// A CUDA context on device `ordinal`, or [`Error::NoDriver`] where there is no driver.
pub fn context(ordinal: usize) -> Result<Arc<CudaContext>> {
    if !driver_present() {
        return Err(Error::NoDriver);
    }
    CudaContext::new(ordinal).during("creating a context")
}

/// Limits and identity of the device a context is on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// Device ordinal of the context.
    pub ordinal: usize,
    /// Marketing name.
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (u32, u32),
    /// Shared memory a block may opt in to (`MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`).
    pub smem_optin_per_block: usize,
    /// Shared memory the system reserves per block (`RESERVED_SHARED_MEMORY_PER_BLOCK`).
    pub smem_reserved_per_block: usize,
    /// Shared memory per multiprocessor.
    pub smem_per_sm: usize,
    /// Multiprocessors.
    pub sm_count: usize,
    /// L2 cache bytes.
    pub l2_bytes: usize,
    /// Resident threads per multiprocessor.
    pub threads_per_sm: usize,
    /// 32-bit registers per multiprocessor.
    pub registers_per_sm: usize,
    /// Driver version, e.g. 13000 for 13.0.
    pub driver_version: i32,
}

impl DeviceInfo {
    /// Reads the device behind `ctx` (the context's own device, not device 0).
    pub fn query(ctx: &Arc<CudaContext>) -> Result<DeviceInfo> {
        let attr = |a: Attr| ctx.attribute(a).during("reading a device attribute").map(|v| v as usize);
        let (major, minor) = ctx.compute_capability().during("reading the compute capability")?;
        let mut driver_version = 0;
        // SAFETY: writes one i32 through a valid pointer.
        unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut driver_version) }
            .result()
            .during("reading the driver version")?;
        Ok(DeviceInfo {
            ordinal: ctx.ordinal(),
            name: ctx.name().during("reading the device name")?,
            compute_capability: (major as u32, minor as u32),
            smem_optin_per_block: attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?,
            smem_reserved_per_block: attr(Attr::CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK)?,
            smem_per_sm: attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR)?,
            sm_count: attr(Attr::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
            l2_bytes: attr(Attr::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)?,
            threads_per_sm: attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR)?,
            registers_per_sm: attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR)?,
            driver_version,
        })
    }

    /// The shipped PTX target for this device.
    pub fn arch(&self) -> Result<Arch> {
        let (major, minor) = self.compute_capability;
        Arch::for_compute_capability(major, minor).ok_or(Error::UnsupportedArch { major, minor })
    }
}
