//! Natural FP4 codes into the kernels' layout on the device (the device side of
//! [`crate::order_chunks`] and [`crate::pack_codes`]), for weights that are already in device
//! memory: an engine's or framework's buffers never travel through the host.

use std::sync::{Arc, OnceLock};

use cudarc::driver::{CudaContext, CudaFunction, CudaStream, DevicePtr, DevicePtrMut};
use cudarc::nvrtc::Ptx;
use stagefit_kernels::params::{PackParams, PACK_BLOCK};

use super::validate::check_dims;
use crate::embedded::weights_module_ptx;
use crate::error::{DriverContext, Error, Result};
use crate::launch::{launch, LaunchShape};
use crate::Arch;

/// The weight-packing kernel of one context, loaded on first use.
pub(super) struct Packer {
    ctx: Arc<CudaContext>,
    arch: Arch,
    function: OnceLock<CudaFunction>,
}

impl Packer {
    /// Nothing loaded yet, for `arch` in `ctx`.
    pub(super) fn new(ctx: Arc<CudaContext>, arch: Arch) -> Packer {
        Packer { ctx, arch, function: OnceLock::new() }
    }

    /// The kernel, loading its module on the first call.
    fn function(&self) -> Result<&CudaFunction> {
        if let Some(function) = self.function.get() {
            return Ok(function);
        }
        let ptx = weights_module_ptx(self.arch)
            .ok_or_else(|| Error::UnknownVariant(format!("no weight-packing PTX for {}", self.arch.name())))?;
        let module = self.ctx.load_module(Ptx::from_src(ptx)).during("loading the weight-packing kernel")?;
        let function = module.load_function("stagefit_weights_pack").during("finding the weight-packing kernel")?;
        Ok(self.function.get_or_init(|| function))
    }

    /// Writes `natural` (`groups · n · k / 2` bytes of codes in the natural row-major order)
    /// into `packed` in the kernels' layout, on `stream`.
    pub(super) fn pack(
        &self,
        stream: &Arc<CudaStream>,
        (groups, n, k): (usize, usize, usize),
        natural: &impl DevicePtr<u8>,
        packed: &mut impl DevicePtrMut<u8>,
    ) -> Result<()> {
        check_dims(groups, n, k)?;
        let bytes = groups * n * k / 2;
        for (buffer, ctx, actual) in [
            ("natural", natural.stream().context(), natural.len()),
            ("packed", packed.stream().context(), packed.len()),
        ] {
            if **ctx != *self.ctx {
                return Err(Error::Context { buffer, expected: self.ctx.ordinal(), actual: ctx.ordinal() });
            }
            if actual != bytes {
                return Err(Error::BufferTooSmall { buffer, needed: bytes, actual });
            }
        }
        if **stream.context() != *self.ctx {
            let (expected, actual) = (self.ctx.ordinal(), stream.context().ordinal());
            return Err(Error::Context { buffer: "stream", expected, actual });
        }
        let function = self.function()?;
        let (src, _src_sync) = natural.device_ptr(stream);
        let (dst, _dst_sync) = packed.device_ptr_mut(stream);
        if src % 16 != 0 || dst % 16 != 0 {
            return Err(Error::Shape {
                what: "buffer address",
                value: if src % 16 != 0 { src } else { dst } as usize,
                requirement: "16-byte aligned (a view starting at a multiple of 16 bytes)",
            });
        }
        let params = PackParams { src, dst, groups: groups as u32, n: n as u32, k: k as u32 };
        let chunks = bytes / 16;
        let shape = LaunchShape {
            blocks: chunks.div_ceil(PACK_BLOCK).clamp(1, 65536) as u32,
            threads: PACK_BLOCK as u32,
            shared_bytes: 0,
            programmatic: false,
        };
        // SAFETY: the kernel takes one `PackParams` and `PACK_BLOCK` threads; `src` and `dst`
        // are live allocations of this context, each exactly `groups · n · k / 2` bytes and
        // 16-byte aligned (checked above), held by the guards; they cannot overlap, because
        // `packed` is borrowed mutably while `natural` is borrowed (cudarc hands out one
        // mutable view of a range at a time).
        unsafe { launch(function, stream, shape, params, "launching the weight packing") }
    }
}
