//! The grouped GEMM on the GPU. One call ([`GroupedGemm::run`]) passes through each module once:
//! `validate` (shapes, sizes and buffers), `select` (which variant: a pure function of the plan,
//! the problem and the preference, [`Selection::select`]), `modules` (the variant's loaded
//! kernel) and the launch guard ([`GroupedGemm::check_fits`]), which refuses any variant whose
//! shared memory exceeds the limit before the driver sees it, then the crate's one launch
//! helper.

mod modules;
mod packing;
mod select;
mod validate;
mod weights;

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, DeviceSlice};
use half::bf16;

use crate::device::DeviceInfo;
use crate::error::{Error, Result};
use crate::heuristic::ProblemShape;
use crate::launch::{launch, programmatic, LaunchShape};
use crate::plan::{SmemLimit, StagePolicy, TacticPlan};
use crate::tuned::{Compatibility, TuneCache};
use crate::{Arch, Fp4Format, GroupedGemmParams};
use modules::{LoadedTactic, Modules};
use packing::Packer;
use stagefit_kernels::params::epilogue;

pub use select::{Selection, TacticChoice, Variant};
pub use validate::{check_offsets, check_problem, offsets_from_sizes, MAX_DIM};
pub use weights::{DeviceWeights, WeightsShape, WeightsView};

/// Arguments of one grouped GEMM: `C_g = A_g · dequant(W_g)ᵀ`, group `g` owning rows
/// `offsets[g]..offsets[g+1]` of `a` and `c`. Every buffer is a view, so a call can read and
/// write parts of larger allocations (`slice.slice(range)`, `slice.as_view()`,
/// [`DeviceWeights::view`]).
pub struct GroupedGemmArgs<'a> {
    /// Rows of `a` and `c` (= `offsets[groups]`; the kernel clamps every group to them).
    pub rows: usize,
    /// bf16 `[rows, k]`.
    pub a: CudaView<'a, bf16>,
    /// u32 `[groups + 1]`, non-decreasing from 0.
    pub offsets: CudaView<'a, u32>,
    /// The experts' FP4 weights.
    pub weights: WeightsView<'a>,
    /// bf16 `[rows, n]`, written.
    pub c: CudaViewMut<'a, bf16>,
}

/// The gated epilogue of a call of the MoE layer (crate-internal: see
/// [`GroupedGemm::run_fused`]): the activation of interleaved (gate, up) column pairs, so that
/// `c` is `[rows, n / 2]` (see `stagefit_kernels::params::epilogue::GATED`).
pub(crate) struct GatedEpilogue<'a> {
    /// f32 `[groups, n]`, added to gate and up before the activation.
    pub bias: CudaView<'a, f32>,
    /// One of `stagefit_kernels::params::activation`, with gpt-oss's clamp limit and sigmoid
    /// slope.
    pub activation: (u32, f32, f32),
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
    tuned: Option<TuneCache>,
    input_checks: bool,
    /// Launch with programmatic dependent launch ([`GroupedGemm::with_programmatic_launch`]).
    programmatic: bool,
    modules: Modules,
    packer: Packer,
}

impl GroupedGemm {
    /// A handle for the device `ctx` is on, limited to `budget` bytes of shared memory per
    /// block if given (the smaller of the budget and the device's opt-in maximum wins). Where
    /// the crate ships a tune cache for this device and limit ([`TuneCache::shipped`]),
    /// [`TacticChoice::Auto`] prefers its choices ([`GroupedGemm::without_tuning`] turns that
    /// off).
    pub fn new(ctx: &Arc<CudaContext>, budget: Option<usize>) -> Result<GroupedGemm> {
        let device = DeviceInfo::query(ctx)?;
        let arch = device.arch()?;
        let limit = SmemLimit { device_optin: device.smem_optin_per_block, budget };
        let tuned = TuneCache::shipped(&device, limit.bytes());
        if let Some(cache) = &tuned {
            tracing::debug!(cache = %cache.made_for(), "using the shipped tune cache");
        }
        Ok(GroupedGemm {
            ctx: ctx.clone(),
            arch,
            limit,
            policy: StagePolicy::RunTime,
            plans: StagePolicy::RunTime.plan_all(arch, limit.bytes()),
            tuned,
            input_checks: cfg!(debug_assertions),
            programmatic: arch.programmatic_launch(),
            modules: Modules::new(ctx.clone(), arch, device.smem_optin_per_block),
            packer: Packer::new(ctx.clone(), arch),
            device,
        })
    }

    /// The same handle choosing STAGES by `policy` (the default is [`StagePolicy::RunTime`]).
    pub fn with_policy(mut self, policy: StagePolicy) -> GroupedGemm {
        self.policy = policy;
        self.plans = policy.plan_all(self.arch, self.limit.bytes());
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
    /// a cache made on another device or at a smaller limit, or naming a variant that is not
    /// compiled, is refused, and one made under another driver version is used with a warning.
    /// A cache made at a larger limit applies ([`Compatibility::LargerLimit`]): an entry whose
    /// variant does not fit the limit in force falls back to the heuristic.
    pub fn with_tuning(mut self, cache: TuneCache) -> Result<GroupedGemm> {
        cache.validate().map_err(|problem| Error::TuneCache { path: "(in memory)".into(), problem })?;
        let this = || {
            format!(
                "{} (cc {:?}) at a {}-byte limit",
                self.device.name,
                self.device.compute_capability,
                self.limit.bytes()
            )
        };
        match cache.compatibility(&self.device, self.limit.bytes()) {
            Compatibility::Same | Compatibility::LargerLimit => {}
            Compatibility::OtherDriver => tracing::warn!(
                "the tune cache was made under driver {}, this is driver {}: using it anyway (rerun `stagefit tune` to refresh it)",
                cache.driver_version,
                self.device.driver_version
            ),
            Compatibility::SmallerLimit | Compatibility::OtherDevice => {
                return Err(Error::TuneCache {
                    path: "(in memory)".into(),
                    problem: format!("made for {}, not {}", cache.made_for(), this()),
                })
            }
        }
        self.tuned = Some(cache);
        Ok(self)
    }

    /// The same handle with programmatic dependent launch on or off. It is on by default where
    /// the PTX target has it (sm_90 and later, [`Arch::programmatic_launch`]): each call's blocks
    /// may be scheduled while the kernel before it on the stream finishes, and wait for it at
    /// their first instruction, which hides the gap between consecutive kernels. It is used for
    /// calls of at most 32 rows (decode-sized; larger calls measured slower with it). Asking for
    /// it on an earlier target leaves it off.
    pub fn with_programmatic_launch(mut self, on: bool) -> GroupedGemm {
        self.programmatic = on && self.arch.programmatic_launch();
        self
    }

    /// Whether calls use programmatic dependent launch.
    pub fn programmatic_launch(&self) -> bool {
        self.programmatic
    }

    /// The same handle choosing by the heuristic alone (no tune cache, shipped or given).
    pub fn without_tuning(mut self) -> GroupedGemm {
        self.tuned = None;
        self
    }

    /// The tune cache [`TacticChoice::Auto`] prefers, if any.
    pub fn tuning(&self) -> Option<&TuneCache> {
        self.tuned.as_ref()
    }

    /// Whether calls read their device data back and check it ([`GroupedGemm::with_input_checks`]).
    pub fn input_checks(&self) -> bool {
        self.input_checks
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
        self.modules.count()
    }

    /// The shared-memory limit in force.
    pub fn limit(&self) -> SmemLimit {
        self.limit
    }

    /// Every tactic's STAGES under this handle's limit and policy.
    pub fn plan(&self) -> &[TacticPlan] {
        &self.plans
    }

    /// What selection reads for this handle.
    pub(crate) fn selection(&self) -> Selection<'_> {
        Selection {
            arch: self.arch,
            plans: &self.plans,
            policy: self.policy,
            limit: self.limit,
            sm_count: self.device.sm_count,
            tuned: self.tuned.as_ref(),
        }
    }

    /// The variant a call with `format` and `problem` would run (its module is loaded to
    /// read the kernel's static shared memory).
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
        let (tactic, stages) = self.selection().select(format, problem, choice)?;
        let module = self.modules.get(format, tactic)?;
        let variant = Variant::new(tactic, stages, module.kernels[&stages].static_smem_bytes);
        Ok((variant, module))
    }

    /// Runs `C_g = A_g · dequant(W_g)ᵀ` for every group on `stream`, with the variant `choice`
    /// selects; returns the variant that ran.
    pub fn run(
        &self,
        stream: &Arc<CudaStream>,
        args: GroupedGemmArgs<'_>,
        choice: TacticChoice<'_>,
    ) -> Result<Variant> {
        self.run_fused(stream, args, None, choice, self.input_checks, false)
    }

    /// [`GroupedGemm::run`] with the `gated` epilogue if given, and the device-data checks on or
    /// off for this call (off while a stream is captured into a graph: the checks read data
    /// back, which a capture cannot do). With `weights_before_wait`, which the caller may pass
    /// only where the kernel it launched just before on `stream` is a stagefit kernel that
    /// writes none of the weights and offsets, a programmatic launch may read them before the
    /// kernel before it has finished (`GroupedGemmParams::weights_before_wait`).
    pub(crate) fn run_fused(
        &self,
        stream: &Arc<CudaStream>,
        args: GroupedGemmArgs<'_>,
        gated: Option<GatedEpilogue<'_>>,
        choice: TacticChoice<'_>,
        input_checks: bool,
        weights_before_wait: bool,
    ) -> Result<Variant> {
        let problem = validate::validate(&args, gated.as_ref().map(|g| g.bias.len()))?;
        self.check_contexts(stream, &args, gated.as_ref())?;
        if input_checks {
            validate::check_device_data(stream, &args)?;
        }
        let (variant, module) = self.select_loaded(args.weights.shape().format, &problem, choice)?;
        self.check_fits(&variant)?;
        let kernel = &module.kernels[&variant.stages];
        let (weights, dims) = (&args.weights, args.weights.shape());
        let (bm, bn, _) = variant.tile;
        // A bound on the tiles (each group adds at most one partial m-tile); the persistent
        // grid walks the real count from the tile table.
        let tiles_bound = (args.rows.div_ceil(bm) + dims.groups.min(args.rows)) * dims.n.div_ceil(bn);
        let shape = LaunchShape {
            blocks: tiles_bound.min(kernel.blocks_per_sm.max(1) * self.device.sm_count) as u32,
            threads: variant.tactic.tile.threads() as u32,
            shared_bytes: variant.dynamic_smem_bytes as u32,
            programmatic: programmatic(self.programmatic, args.rows),
        };
        let (a, _a_sync) = args.a.device_ptr(stream);
        let (offsets, _o_sync) = args.offsets.device_ptr(stream);
        let (w, _w_sync) = weights.codes.device_ptr(stream);
        let (w_scales, _s_sync) = weights.scales.device_ptr(stream);
        let (expert_scales, _e_sync) = weights.expert_scales.device_ptr(stream);
        let mut c_view = args.c;
        let (c, _c_sync) = c_view.device_ptr_mut(stream);
        let mut params = GroupedGemmParams {
            a,
            w,
            w_scales,
            expert_scales,
            offsets,
            c,
            n: dims.n as u32,
            k: dims.k as u32,
            groups: dims.groups as u32,
            rows: args.rows as u32,
            weights_before_wait: u32::from(weights_before_wait && shape.programmatic),
            ..GroupedGemmParams::default()
        };
        let _bias_sync = gated.as_ref().map(|gated| {
            let (bias, sync) = gated.bias.device_ptr(stream);
            let (activation, limit, alpha) = gated.activation;
            params = GroupedGemmParams { epilogue: epilogue::GATED, bias, activation, limit, alpha, ..params };
            sync
        });
        // SAFETY: the entry point takes one `GroupedGemmParams`; every pointer in it is a live
        // allocation of this context (`check_contexts`) whose length
        // `validate` checked against the shapes and `rows` (the kernel clamps every group to
        // `rows`, whatever `offsets` holds; N, at most 2^30, and K, at most 2^28, fit its 32-bit
        // arithmetic; the gated epilogue's C of `rows × N/2` and bias of `groups × N`), and the
        // guards above hold them across the launch (with `weights_before_wait`, the kernel
        // launched before this one writes none of the weights and offsets this one reads before
        // its wait: the caller's promise); the block size is the tactic's, and the
        // dynamic shared memory is the variant's exact layout size, which `check_fits` held to
        // the limit and the function attribute allows (`Modules::get`).
        unsafe { launch(&kernel.function, stream, shape, params, "launching the grouped GEMM")? };
        Ok(variant)
    }

    /// Writes FP4 codes already in device memory, `natural` (`groups · n · k / 2` bytes, each
    /// expert's `n` rows of `k / 2` bytes, element `2j` in the low nibble of byte `j` of a row: the
    /// order checkpoints and [`crate::fp4::QuantizedWeights`] hold), into `packed` in the kernels'
    /// layout, on `stream`: what [`DeviceWeights::upload`] does on the host, so weights that live
    /// on the device never travel through the host. With the scales (whose layout the kernels
    /// take as stored) the result makes a [`WeightsView`] or [`DeviceWeights::from_parts`].
    /// Both buffers must start 16-byte aligned and may not overlap.
    pub fn pack_codes(
        &self,
        stream: &Arc<CudaStream>,
        shape: (usize, usize, usize),
        natural: &impl DevicePtr<u8>,
        packed: &mut impl DevicePtrMut<u8>,
    ) -> Result<()> {
        self.packer.pack(stream, shape, natural, packed)
    }

    /// Refuses a stream or buffer of another CUDA context than the handle's.
    fn check_contexts(
        &self,
        stream: &Arc<CudaStream>,
        args: &GroupedGemmArgs<'_>,
        gated: Option<&GatedEpilogue<'_>>,
    ) -> Result<()> {
        let buffers = [
            ("stream", stream.context()),
            ("a", args.a.stream().context()),
            ("offsets", args.offsets.stream().context()),
            ("c", args.c.stream().context()),
        ];
        let bias = gated.map(|g| ("bias", g.bias.stream().context()));
        for (buffer, ctx) in buffers.into_iter().chain(args.weights.contexts()).chain(bias) {
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
            let what = format!("{} at STAGES={}", variant.tactic.name, variant.stages);
            return Err(self.selection().too_large(what, variant.smem_bytes()));
        }
        Ok(())
    }
}
