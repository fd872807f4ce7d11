//! The grouped GEMM on the GPU: weights on the device, variant selection, and the one launch
//! path, which refuses any variant whose shared memory exceeds the limit before the driver
//! sees it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::sys::CUfunction_attribute as FnAttr;
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, LaunchConfig};
use cudarc::nvrtc::Ptx;
use half::bf16;
use serde::Serialize;

use crate::device::DeviceInfo;
use crate::embedded::{kernel_name, module_ptx};
use crate::error::{DriverContext, Error, Result};
use crate::fp4::QuantizedWeights;
use crate::heuristic::{prefer, ProblemShape};
use crate::plan::{SmemLimit, StagePolicy, TacticPlan};
use crate::{Arch, Fp4Format, GroupedGemmParams, SmemLayout, Tactic, MAX_GROUPS, TACTICS};
use stagefit_kernels::packing::{pack_codes, unpack_codes};

/// FP4 expert weights in device memory, in the kernels' layout: codes packed by
/// [`pack_codes`], scales as in [`QuantizedWeights`].
pub struct DeviceWeights {
    format: Fp4Format,
    groups: usize,
    n: usize,
    k: usize,
    codes: CudaSlice<u8>,
    scales: CudaSlice<u8>,
    expert_scales: CudaSlice<f32>,
    /// Set once [`DeviceWeights::check_scales`] has passed (or the scales came from the host
    /// already checked).
    scales_checked: OnceLock<()>,
}

impl DeviceWeights {
    /// Copies quantized weights to the device, checking that they suit the kernels (shapes
    /// and every scale) and packing the codes into the kernels' bit layout.
    pub fn upload(stream: &Arc<CudaStream>, w: &QuantizedWeights) -> Result<DeviceWeights> {
        check_dims(w.groups, w.n, w.k)?;
        w.check_scales()?;
        let mut packed = w.codes.clone();
        pack_codes(&mut packed);
        let weights = DeviceWeights::from_parts(
            w.format,
            (w.groups, w.n, w.k),
            stream.clone_htod(&packed).during("uploading weight codes")?,
            stream.clone_htod(&w.scales).during("uploading weight scales")?,
            stream.clone_htod(&w.expert_scales).during("uploading expert scales")?,
        )?;
        weights.scales_checked.get_or_init(|| ());
        Ok(weights)
    }

    /// Weights already in device memory, in the kernels' layout (codes packed by
    /// [`pack_codes`]); the buffer lengths are checked here, the scales by
    /// [`DeviceWeights::check_scales`] (which a [`GroupedGemm`] with input checks runs once).
    pub fn from_parts(
        format: Fp4Format,
        (groups, n, k): (usize, usize, usize),
        codes: CudaSlice<u8>,
        scales: CudaSlice<u8>,
        expert_scales: CudaSlice<f32>,
    ) -> Result<DeviceWeights> {
        check_dims(groups, n, k)?;
        let (codes_needed, scales_needed) = weight_buffer_lengths(format, groups, n, k)?;
        for (buffer, needed, actual) in [
            ("codes", codes_needed, codes.len()),
            ("scales", scales_needed, scales.len()),
            ("expert_scales", groups, expert_scales.len()),
        ] {
            if actual != needed {
                return Err(Error::BufferTooSmall { buffer, needed, actual });
            }
        }
        Ok(DeviceWeights { format, groups, n, k, codes, scales, expert_scales, scales_checked: OnceLock::new() })
    }

    /// Copies the weights back to the host, codes unpacked to the natural order.
    pub fn download(&self, stream: &Arc<CudaStream>) -> Result<QuantizedWeights> {
        let mut codes = stream.clone_dtoh(&self.codes).during("downloading weight codes")?;
        unpack_codes(&mut codes);
        Ok(QuantizedWeights {
            format: self.format,
            groups: self.groups,
            n: self.n,
            k: self.k,
            codes,
            scales: stream.clone_dtoh(&self.scales).during("downloading weight scales")?,
            expert_scales: stream.clone_dtoh(&self.expert_scales).during("downloading expert scales")?,
        })
    }

    /// Reads the block and expert scales back (once; later calls return at once) and checks
    /// that the kernels can use them (see [`crate::fp4::check_scales`]).
    pub fn check_scales(&self, stream: &Arc<CudaStream>) -> Result<()> {
        if self.scales_checked.get().is_some() {
            return Ok(());
        }
        let scales = stream.clone_dtoh(&self.scales).during("downloading weight scales")?;
        let expert_scales = stream.clone_dtoh(&self.expert_scales).during("downloading expert scales")?;
        crate::fp4::check_scales(self.format, &scales, &expert_scales)?;
        self.scales_checked.get_or_init(|| ());
        Ok(())
    }

    /// The weights' format.
    pub fn format(&self) -> Fp4Format {
        self.format
    }
    /// Experts.
    pub fn groups(&self) -> usize {
        self.groups
    }
    /// Rows per expert (output columns of the GEMM).
    pub fn n(&self) -> usize {
        self.n
    }
    /// Reduction length.
    pub fn k(&self) -> usize {
        self.k
    }
}

/// The largest N and K the kernels take: their K-tile and column arithmetic is 32-bit.
pub const MAX_DIM: usize = 1 << 30;

/// The dimension rules every kernel shares.
fn check_dims(groups: usize, n: usize, k: usize) -> Result<()> {
    if groups == 0 || groups > MAX_GROUPS {
        return Err(Error::Shape { what: "groups", value: groups, requirement: "between 1 and 256" });
    }
    if n == 0 || n % 16 != 0 || n > MAX_DIM {
        return Err(Error::Shape { what: "n", value: n, requirement: "a positive multiple of 16, at most 2^30" });
    }
    if k == 0 || k % stagefit_kernels::format::K_CHUNK != 0 || k > MAX_DIM {
        return Err(Error::Shape { what: "k", value: k, requirement: "a positive multiple of 32, at most 2^30" });
    }
    Ok(())
}

/// `a · b`, or a shape error naming `what` where the product does not fit an address.
fn product(what: &'static str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or(Error::Shape { what, value: a, requirement: "sizes whose product fits an address" })
}

/// Bytes of packed codes and of block scales that weights of this shape hold (checked
/// arithmetic: shapes whose sizes overflow are refused).
fn weight_buffer_lengths(format: Fp4Format, groups: usize, n: usize, k: usize) -> Result<(usize, usize)> {
    let per_group = product("n", n, k)?;
    let codes = product("groups", groups, per_group)? / 2;
    let scales = codes * 2 / format.scale_block();
    Ok((codes, scales))
}

/// How to pick the kernel variant for a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TacticChoice<'a> {
    /// The tuned choice where the handle has a tune cache entry for the problem, else the
    /// heuristic's preferred tactic and STAGES (capped by what fits).
    Auto,
    /// This tactic, at the deepest STAGES that fits.
    Tactic(&'a str),
    /// Exactly this tactic and STAGES; refused with [`Error::SharedMemory`] if it does not fit.
    Variant {
        /// Tactic name.
        tactic: &'a str,
        /// Pipeline depth.
        stages: usize,
    },
}

/// One compiled kernel: a tactic at one STAGES, with its shared-memory footprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Variant {
    /// Tactic name.
    pub tactic: &'static str,
    /// Block tile rows, columns and K step.
    pub tile: (usize, usize, usize),
    /// Pipeline depth.
    pub stages: usize,
    /// Dynamic shared memory requested at launch (the layout's exact size).
    pub dynamic_smem_bytes: usize,
    /// Static shared memory the compiled kernel declares.
    pub static_smem_bytes: usize,
}

impl Variant {
    /// Static plus dynamic shared memory per block.
    pub fn smem_bytes(&self) -> usize {
        self.dynamic_smem_bytes + self.static_smem_bytes
    }
}

/// Arguments of one grouped GEMM: `C_g = A_g · dequant(W_g)ᵀ`, group `g` owning rows
/// `offsets[g]..offsets[g+1]` of `a` and `c`.
pub struct GroupedGemmArgs<'a> {
    /// Rows of `a` and `c` (= `offsets[groups]`; the kernel clamps every group to them).
    pub rows: usize,
    /// bf16 `[rows, k]`.
    pub a: &'a CudaSlice<bf16>,
    /// u32 `[groups + 1]`, non-decreasing from 0.
    pub offsets: &'a CudaSlice<u32>,
    /// The experts' FP4 weights.
    pub weights: &'a DeviceWeights,
    /// bf16 `[rows, n]`, written.
    pub c: &'a mut CudaSlice<bf16>,
}

struct LoadedKernel {
    function: CudaFunction,
    static_smem_bytes: usize,
    /// Resident blocks per multiprocessor at the variant's footprint (0 where the device
    /// cannot run it): sizes the persistent grid, read once at load.
    blocks_per_sm: usize,
}

/// The loaded module of one (format, tactic): every STAGES it is compiled at.
struct LoadedTactic {
    kernels: HashMap<usize, LoadedKernel>,
}

/// A grouped-GEMM handle for one context: the device's limits, an optional caller budget,
/// and the kernel modules loaded so far (each (format, tactic) is JIT-compiled on first use).
pub struct GroupedGemm {
    ctx: Arc<CudaContext>,
    device: DeviceInfo,
    arch: Arch,
    limit: SmemLimit,
    policy: StagePolicy,
    /// Every tactic's STAGES under `limit` and `policy`, worked out once.
    plans: Vec<TacticPlan>,
    tuned: Option<crate::tune::TuneCache>,
    input_checks: bool,
    loaded: Mutex<HashMap<(Fp4Format, &'static str), Arc<LoadedTactic>>>,
}

impl GroupedGemm {
    /// A handle for the device `ctx` is on, limited to `budget` bytes of shared memory per
    /// block if given (the smaller of the budget and the device's opt-in maximum wins).
    pub fn new(ctx: &Arc<CudaContext>, budget: Option<usize>) -> Result<GroupedGemm> {
        let device = DeviceInfo::query(ctx)?;
        let arch = device.arch()?;
        let limit = SmemLimit { device_optin: device.smem_optin_per_block, budget };
        Ok(GroupedGemm {
            ctx: ctx.clone(),
            device,
            arch,
            limit,
            policy: StagePolicy::RunTime,
            plans: StagePolicy::RunTime.plan_all(limit.bytes()),
            tuned: None,
            input_checks: cfg!(debug_assertions),
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// The same handle choosing STAGES by `policy` (the default is [`StagePolicy::RunTime`]).
    pub fn with_policy(mut self, policy: StagePolicy) -> GroupedGemm {
        self.policy = policy;
        self.plans = policy.plan_all(self.limit.bytes());
        self
    }

    /// The same handle with input checks on or off (on by default in debug builds). With
    /// them on, every call reads its group offsets back and checks them ([`check_offsets`]),
    /// and each [`DeviceWeights`]' scales are read back and checked on their first call
    /// ([`DeviceWeights::check_scales`]); the reads synchronize the stream. With them off, a
    /// call trusts the device data's values but not its memory safety: the kernel clamps every
    /// group to the `rows` rows of A and C, so bad offsets give wrong rows, never an access
    /// outside the buffers.
    pub fn with_input_checks(mut self, on: bool) -> GroupedGemm {
        self.input_checks = on;
        self
    }

    /// The same handle preferring the tuned choices of `cache` for [`TacticChoice::Auto`];
    /// a cache made on another device, driver or limit, or naming a variant that is not
    /// compiled, is refused. An entry whose variant does not fit the limit in force falls back
    /// to the heuristic.
    pub fn with_tuning(mut self, cache: crate::tune::TuneCache) -> Result<GroupedGemm> {
        cache.validate().map_err(|problem| Error::TuneCache { path: "(in memory)".into(), problem })?;
        if !cache.fits(&self.device, self.limit.bytes()) {
            return Err(Error::TuneCache {
                path: "(in memory)".into(),
                problem: format!(
                    "made for {} (cc {:?}, driver {}, limit {}), not this device and limit",
                    cache.device, cache.compute_capability, cache.driver_version, cache.smem_limit
                ),
            });
        }
        self.tuned = Some(cache);
        Ok(self)
    }

    /// The device this handle runs on.
    pub fn device(&self) -> &DeviceInfo {
        &self.device
    }

    /// The PTX target loaded on this device.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Kernel modules loaded so far (one per (format, tactic) used: loading is lazy).
    pub fn loaded_modules(&self) -> usize {
        self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// The shared-memory limit in force.
    pub fn limit(&self) -> SmemLimit {
        self.limit
    }

    /// Every tactic's STAGES under this handle's limit and policy.
    pub fn plan(&self) -> &[TacticPlan] {
        &self.plans
    }

    /// The variant a call with `format` and `problem` would run.
    pub fn select(&self, format: Fp4Format, problem: &ProblemShape, choice: TacticChoice<'_>) -> Result<Variant> {
        self.select_loaded(format, problem, choice).map(|(variant, _)| variant)
    }

    /// [`GroupedGemm::select`], with the loaded module the variant lives in.
    fn select_loaded(
        &self,
        format: Fp4Format,
        problem: &ProblemShape,
        choice: TacticChoice<'_>,
    ) -> Result<(Variant, Arc<LoadedTactic>)> {
        let limit = self.limit.bytes();
        let tuned = match choice {
            TacticChoice::Auto => self.tuned.as_ref().and_then(|c| c.lookup(format, problem)),
            _ => None,
        };
        if let Some((tactic, stages)) = tuned {
            let tactic = find_tactic(tactic)?;
            if self.policy.stages(tactic, limit, 0).is_some_and(|deepest| stages <= deepest) {
                return self.select_loaded(format, problem, TacticChoice::Variant { tactic: tactic.name, stages });
            }
        }
        let (tactic, forced_stages) = match choice {
            TacticChoice::Auto => {
                let Some(best) = prefer(&self.plans, problem, self.device.sm_count) else {
                    let needed =
                        TACTICS.iter().map(|t| SmemLayout::new(t.tile, t.stages[0]).total_bytes).min().unwrap_or(0);
                    return Err(self.too_large("every tactic".into(), needed));
                };
                // The heuristic's STAGES preference applies to the run-time policy; the fixed
                // policy keeps its one STAGES.
                (best.tactic, if self.policy == StagePolicy::RunTime { best.stages } else { None })
            }
            TacticChoice::Tactic(name) => (find_tactic(name)?, None),
            TacticChoice::Variant { tactic, stages } => {
                let tactic = find_tactic(tactic)?;
                if !tactic.stages.contains(&stages) {
                    return Err(Error::UnknownVariant(format!("{} is not compiled at STAGES={stages}", tactic.name)));
                }
                (tactic, Some(stages))
            }
        };
        let loaded = self.load(format, tactic)?;
        let static_bytes = loaded.kernels[&tactic.stages[0]].static_smem_bytes;
        // A forced variant is held to the limit by the launch guard; the heuristic's STAGES
        // assumed no static shared memory, so it is re-checked here.
        let heuristic_fits = |s: usize| static_bytes + SmemLayout::new(tactic.tile, s).total_bytes <= limit;
        let stages = match (choice, forced_stages) {
            (TacticChoice::Variant { .. }, Some(s)) => s,
            (_, Some(s)) if heuristic_fits(s) => s,
            _ => self
                .policy
                .stages(tactic, limit, static_bytes)
                .ok_or_else(|| self.too_large(tactic.name.into(), static_bytes + self.policy.least_bytes(tactic)))?,
        };
        let variant = Variant {
            tactic: tactic.name,
            tile: (tactic.tile.bm(), tactic.tile.bn(), tactic.tile.bk()),
            stages,
            dynamic_smem_bytes: SmemLayout::new(tactic.tile, stages).total_bytes,
            static_smem_bytes: loaded.kernels[&stages].static_smem_bytes,
        };
        Ok((variant, loaded))
    }

    /// Runs `C_g = A_g · dequant(W_g)ᵀ` for every group on `stream`, with the variant `choice`
    /// selects; returns the variant that ran.
    pub fn run(
        &self,
        stream: &Arc<CudaStream>,
        args: GroupedGemmArgs<'_>,
        choice: TacticChoice<'_>,
    ) -> Result<Variant> {
        let problem = validate(&args)?;
        self.check_contexts(stream, &args)?;
        if self.input_checks {
            args.weights.check_scales(stream)?;
            let offsets = stream.clone_dtoh(args.offsets).during("reading the group offsets back")?;
            check_offsets(&offsets, args.weights.groups, args.rows)?;
        }
        let (variant, loaded) = self.select_loaded(args.weights.format, &problem, choice)?;
        self.launch(stream, args, &variant, &loaded)?;
        Ok(variant)
    }

    /// Refuses a stream or buffer of another CUDA context than the handle's.
    fn check_contexts(&self, stream: &Arc<CudaStream>, args: &GroupedGemmArgs<'_>) -> Result<()> {
        let w = args.weights;
        for (buffer, ctx) in [
            ("stream", stream.context()),
            ("a", args.a.context()),
            ("offsets", args.offsets.context()),
            ("c", args.c.context()),
            ("codes", w.codes.context()),
            ("scales", w.scales.context()),
            ("expert_scales", w.expert_scales.context()),
        ] {
            if **ctx != *self.ctx {
                return Err(Error::Context { buffer, expected: self.ctx.ordinal(), actual: ctx.ordinal() });
            }
        }
        Ok(())
    }

    /// Refuses a variant whose static plus dynamic shared memory exceeds the limit: the check
    /// every launch passes before the driver is asked for anything.
    pub fn check_fits(&self, variant: &Variant) -> Result<()> {
        if variant.smem_bytes() > self.limit.bytes() {
            return Err(
                self.too_large(format!("{} at STAGES={}", variant.tactic, variant.stages), variant.smem_bytes())
            );
        }
        Ok(())
    }

    /// The single launch path.
    fn launch(
        &self,
        stream: &Arc<CudaStream>,
        args: GroupedGemmArgs<'_>,
        variant: &Variant,
        loaded: &LoadedTactic,
    ) -> Result<()> {
        self.check_fits(variant)?;
        let weights = args.weights;
        let tactic = find_tactic(variant.tactic)?;
        let kernel = &loaded.kernels[&variant.stages];
        let (bm, bn, _) = variant.tile;
        let tiles_bound = (args.rows.div_ceil(bm) + weights.groups.min(args.rows)) * weights.n.div_ceil(bn);
        if tiles_bound == 0 {
            return Ok(());
        }
        let threads = tactic.tile.threads() as u32;
        let grid = tiles_bound.min(kernel.blocks_per_sm.max(1) * self.device.sm_count) as u32;
        let cfg = LaunchConfig {
            grid_dim: (grid, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: variant.dynamic_smem_bytes as u32,
        };
        let (a, _a_sync) = args.a.device_ptr(stream);
        let (offsets, _o_sync) = args.offsets.device_ptr(stream);
        let (w, _w_sync) = weights.codes.device_ptr(stream);
        let (w_scales, _s_sync) = weights.scales.device_ptr(stream);
        let (expert_scales, _e_sync) = weights.expert_scales.device_ptr(stream);
        let (c, _c_sync) = args.c.device_ptr_mut(stream);
        let mut params = GroupedGemmParams {
            a,
            w,
            w_scales,
            expert_scales,
            offsets,
            c,
            n: weights.n as u32,
            k: weights.k as u32,
            groups: weights.groups as u32,
            rows: args.rows as u32,
        };
        self.ctx.bind_to_thread().during("binding the context")?;
        let mut kernel_args = [(&mut params as *mut GroupedGemmParams).cast::<std::ffi::c_void>()];
        // SAFETY: the kernel's only parameter is `GroupedGemmParams`, passed by value through
        // the one pointer in `kernel_args`, which outlives the call; every pointer in it is a
        // live device allocation of this context (`check_contexts`) whose size `validate`
        // checked against the shapes and `rows` (the kernel clamps every group to `rows`,
        // whatever `offsets` holds; N and K, at most 2^30, fit its 32-bit arithmetic);
        // the block size is the tactic's, and the dynamic shared memory is the variant's exact
        // layout size, which `check_fits` held to the limit and the function attribute allows.
        // The launch goes straight to the driver, so the call path allocates nothing.
        unsafe {
            cudarc::driver::result::launch_kernel(
                kernel.function.cu_function(),
                cfg.grid_dim,
                cfg.block_dim,
                cfg.shared_mem_bytes,
                stream.cu_stream(),
                &mut kernel_args,
            )
        }
        .during("launching the grouped GEMM")?;
        Ok(())
    }

    fn too_large(&self, what: String, needed: usize) -> Error {
        Error::SharedMemory { what, needed, available: self.limit.bytes(), limit_source: self.limit.source() }
    }

    /// The loaded module of (`format`, `tactic`), JIT-compiling it on first use. Each kernel's
    /// dynamic shared-memory attribute is set to exactly its layout size where the device
    /// allows that size; larger variants stay unlaunchable (the launch guard refuses them).
    fn load(&self, format: Fp4Format, tactic: &'static Tactic) -> Result<Arc<LoadedTactic>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = loaded.get(&(format, tactic.name)) {
            return Ok(found.clone());
        }
        let ptx = module_ptx(self.arch, format, tactic).ok_or_else(|| {
            Error::UnknownVariant(format!("no embedded PTX for {} {} {}", self.arch.name(), format.name(), tactic.name))
        })?;
        let module = self.ctx.load_module(Ptx::from_src(ptx)).during("loading a kernel module")?;
        let mut kernels = HashMap::new();
        for &stages in tactic.stages {
            let function = module.load_function(&kernel_name(format, tactic, stages)).during("finding a kernel")?;
            let static_smem_bytes = function
                .get_attribute(FnAttr::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)
                .during("reading static shared memory")? as usize;
            let dynamic = SmemLayout::new(tactic.tile, stages).total_bytes;
            let mut blocks_per_sm = 0;
            if static_smem_bytes + dynamic <= self.device.smem_optin_per_block {
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

/// The tactic called `name`.
pub fn find_tactic(name: &str) -> Result<&'static Tactic> {
    TACTICS.iter().find(|t| t.name == name).ok_or_else(|| Error::UnknownVariant(format!("no tactic named {name}")))
}

/// Checks a call's shapes and buffer sizes; returns the problem it describes.
fn validate(args: &GroupedGemmArgs<'_>) -> Result<ProblemShape> {
    let w = args.weights;
    let problem = ProblemShape { rows: args.rows, groups: w.groups, n: w.n, k: w.k };
    check_problem(&problem, args.offsets.len(), args.a.len(), args.c.len())?;
    Ok(problem)
}

/// Checks a grouped GEMM's shapes and its buffers' lengths (in elements): the dimension rules
/// of the kernels, rows that fit the kernels' 32-bit row indices, exactly `groups + 1`
/// offsets, and A and C at least `rows × K` and `rows × N` (computed without overflow).
pub fn check_problem(problem: &ProblemShape, offsets_len: usize, a_len: usize, c_len: usize) -> Result<()> {
    let ProblemShape { rows, groups, n, k } = *problem;
    check_dims(groups, n, k)?;
    if rows > u32::MAX as usize {
        return Err(Error::Shape { what: "rows", value: rows, requirement: "at most 2^32 - 1" });
    }
    if offsets_len != groups + 1 {
        return Err(Error::BufferTooSmall { buffer: "offsets", needed: groups + 1, actual: offsets_len });
    }
    for (buffer, width, actual) in [("a", k, a_len), ("c", n, c_len)] {
        let needed = product("rows", rows, width)?;
        if actual < needed {
            return Err(Error::BufferTooSmall { buffer, needed, actual });
        }
    }
    Ok(())
}

/// Group offsets from group sizes: `[0, s0, s0 + s1, …]`; refused where the total exceeds the
/// kernels' 32-bit row indices.
pub fn offsets_from_sizes(sizes: &[usize]) -> Result<Vec<u32>> {
    let mut offsets = Vec::with_capacity(sizes.len() + 1);
    let mut total = 0u32;
    offsets.push(total);
    for &size in sizes {
        total = u32::try_from(size).ok().and_then(|size| total.checked_add(size)).ok_or(Error::Shape {
            what: "rows",
            value: sizes.iter().fold(0usize, |sum, &s| sum.saturating_add(s)),
            requirement: "group sizes that add up to at most 2^32 - 1",
        })?;
        offsets.push(total);
    }
    Ok(offsets)
}

/// Checks host-side group offsets: `groups + 1` values, from 0, non-decreasing, ending at `rows`.
pub fn check_offsets(offsets: &[u32], groups: usize, rows: usize) -> Result<()> {
    if offsets.len().checked_sub(1) != Some(groups) {
        return Err(Error::Offsets(format!(
            "{} values for {groups} groups (need {})",
            offsets.len(),
            groups as u128 + 1
        )));
    }
    if offsets[0] != 0 {
        return Err(Error::Offsets(format!("offsets[0] = {} (must be 0)", offsets[0])));
    }
    if let Some(g) = offsets.windows(2).position(|w| w[1] < w[0]) {
        return Err(Error::Offsets(format!("offsets[{}] = {} < offsets[{g}] = {}", g + 1, offsets[g + 1], offsets[g])));
    }
    if offsets[groups] as usize != rows {
        return Err(Error::Offsets(format!("offsets[{groups}] = {} but there are {rows} rows", offsets[groups])));
    }
    Ok(())
}
