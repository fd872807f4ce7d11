//! The grouped-GEMM kernel modules of one context, loaded (JIT-compiled from the embedded PTX)
//! on first use, one per (format, tactic) with every STAGES it is compiled at.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::sys::CUfunction_attribute as FnAttr;
use cudarc::driver::{CudaContext, CudaFunction};
use cudarc::nvrtc::Ptx;

use crate::embedded::{kernel_name, module_ptx};
use crate::error::{DriverContext, Error, Result};
use crate::{Arch, Fp4Format, SmemLayout, Tactic};

/// One compiled kernel of a loaded module.
pub(super) struct LoadedKernel {
    pub(super) function: CudaFunction,
    pub(super) static_smem_bytes: usize,
    /// Resident blocks per multiprocessor at the variant's footprint (0 where the device
    /// cannot run it): sizes the persistent grid, read once at load.
    pub(super) blocks_per_sm: usize,
}

/// The loaded module of one (format, tactic): every STAGES it is compiled at.
pub(super) struct LoadedTactic {
    pub(super) kernels: HashMap<usize, LoadedKernel>,
}

/// The modules loaded so far in one context.
pub(super) struct Modules {
    ctx: Arc<CudaContext>,
    arch: Arch,
    /// The device's per-block opt-in shared-memory maximum.
    smem_optin: usize,
    loaded: Mutex<HashMap<(Fp4Format, &'static str), Arc<LoadedTactic>>>,
}

impl Modules {
    /// No modules yet, for `arch` in `ctx`, on a device allowing `smem_optin` bytes per block.
    pub(super) fn new(ctx: Arc<CudaContext>, arch: Arch, smem_optin: usize) -> Modules {
        Modules { ctx, arch, smem_optin, loaded: Mutex::new(HashMap::new()) }
    }

    /// How many are loaded.
    pub(super) fn count(&self) -> usize {
        self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// The loaded module of (`format`, `tactic`), JIT-compiling it on first use. Each kernel's
    /// dynamic shared-memory attribute is set to exactly its layout size where the device
    /// allows that size; larger variants stay unlaunchable (the launch guard refuses them).
    pub(super) fn get(&self, format: Fp4Format, tactic: &'static Tactic) -> Result<Arc<LoadedTactic>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = loaded.get(&(format, tactic.name)) {
            return Ok(found.clone());
        }
        let ptx = module_ptx(self.arch, format, tactic).ok_or_else(|| {
            Error::UnknownVariant(format!("no embedded PTX for {} {} {}", self.arch.name(), format.name(), tactic.name))
        })?;
        let started = std::time::Instant::now();
        let module = self.ctx.load_module(Ptx::from_src(ptx)).during("loading a kernel module")?;
        tracing::debug!(
            arch = self.arch.name(),
            format = format.name(),
            tactic = tactic.name,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "loaded (JIT-compiled) a kernel module"
        );
        let mut kernels = HashMap::new();
        for &stages in tactic.stages {
            let function = module.load_function(&kernel_name(format, tactic, stages)).during("finding a kernel")?;
            let static_smem_bytes = function
                .get_attribute(FnAttr::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)
                .during("reading static shared memory")? as usize;
            let dynamic = SmemLayout::new(tactic.tile, stages).total_bytes;
            let mut blocks_per_sm = 0;
            if static_smem_bytes + dynamic <= self.smem_optin {
                function
                    .set_attribute(FnAttr::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, dynamic as i32)
                    .during("setting the dynamic shared-memory size")?;
                blocks_per_sm = function
                    .occupancy_max_active_blocks_per_multiprocessor(tactic.tile.threads() as u32, dynamic, None)
                    .during("querying occupancy")? as usize;
            }
            kernels.insert(stages, LoadedKernel { function, static_smem_bytes, blocks_per_sm });
        }
        let entry = Arc::new(LoadedTactic { kernels });
        loaded.insert((format, tactic.name), entry.clone());
        Ok(entry)
    }
}
