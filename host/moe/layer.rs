//! An MoE layer on the GPU: its weights, a preallocated workspace, and `forward`.

use std::sync::Arc;

use cudarc::driver::sys::{cuEventRecordWithFlags, CUevent_flags, CUevent_record_flags};
use cudarc::driver::{CudaContext, CudaEvent, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceSlice};
use half::bf16;

use crate::error::{DriverContext, Error, Result};
use crate::gemm::{DeviceWeights, GatedEpilogue, GroupedGemm, GroupedGemmArgs, TacticChoice, Variant};
use crate::moe::config::{GateUpLayout, MoeConfig};
use crate::moe::kernels::{MoeKernels, MoeShape};
use crate::moe::weights::MoeLayerWeights;
use crate::plan::StagePolicy;
use crate::tuned::TuneCache;

/// What runs MoE layers on one context: the grouped GEMM (with its shared-memory limit and
/// stage policy) and the MoE-layer kernels.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use half::bf16;
/// use stagefit::moe::{presets, MoeEngine, MoeWorkspace};
/// use stagefit::{plan::StagePolicy, TacticChoice};
///
/// let ctx = stagefit::device::context(0)?;
/// let stream = ctx.default_stream();
/// let config = presets().into_iter().find(|p| p.name == "gpt-oss-20b").unwrap().config;
/// let engine = MoeEngine::new(&ctx, None, StagePolicy::RunTime)?;
/// let layer = engine.random_layer(&stream, &config, 1)?; // or `upload` of a checkpoint's layer
/// let mut ws = MoeWorkspace::new(&stream, &config, 4)?;
/// let x = stream.clone_htod(&vec![bf16::ONE; 4 * config.hidden])?;
/// let mut out = stream.alloc_zeros::<bf16>(4 * config.hidden)?;
/// // Routed by the layer's router:
/// engine.forward(&stream, &layer, &x, 4, &mut out, &mut ws, TacticChoice::Auto)?;
/// // Routed by the caller (each token's 4 experts of 32, and their weights):
/// let ids = stream.clone_htod(&(0..16u32).collect::<Vec<_>>())?;
/// let weights = stream.clone_htod(&[0.25f32; 16])?;
/// engine.forward_routed(&stream, &layer, &x, &ids, &weights, 4, &mut out, &mut ws, TacticChoice::Auto)?;
/// # Ok(())
/// # }
/// ```
pub struct MoeEngine {
    gemm: GroupedGemm,
    kernels: MoeKernels,
    /// Apply the activation in the gate/up GEMM's epilogue where the layout allows
    /// ([`MoeEngine::with_fused_activation`]).
    fused_activation: bool,
    /// Let the down projection start copying its weights before the gate/up GEMM has finished
    /// ([`MoeEngine::with_early_down_weights`]).
    early_down_weights: bool,
}

/// One layer's weights in device memory.
pub struct MoeLayer {
    config: MoeConfig,
    router: CudaSlice<bf16>,
    router_bias: CudaSlice<f32>,
    gate_up: DeviceWeights,
    gate_up_bias: CudaSlice<f32>,
    down: DeviceWeights,
    down_bias: CudaSlice<f32>,
}

/// Device buffers for `forward` on up to `max_tokens` tokens of layers shaped like the config
/// it was made for, allocated once. `forward` refuses a layer or token count whose buffers it
/// cannot hold before launching anything.
pub struct MoeWorkspace {
    max_tokens: usize,
    /// The config it was sized for (for error messages).
    sized_for: MoeConfig,
    /// What each buffer was allocated to hold.
    capacity: WorkspaceLengths,
    logits: CudaSlice<f32>,
    topk_ids: CudaSlice<u32>,
    topk_w: CudaSlice<f32>,
    /// The small-batch routing kernel's block counter (0 between launches).
    counter: CudaSlice<u32>,
    /// What the layer's steps after routing use.
    rest: ExpertBuffers,
}

/// The workspace buffers of the steps after routing (the permutation and the activations in
/// expert order), apart so that a call routed by the workspace's own buffers can use them.
struct ExpertBuffers {
    counts: CudaSlice<u32>,
    offsets: CudaSlice<u32>,
    perm_src: CudaSlice<u32>,
    perm_dst: CudaSlice<u32>,
    a_perm: CudaSlice<bf16>,
    h1: CudaSlice<bf16>,
    a2: CudaSlice<bf16>,
    h2: CudaSlice<bf16>,
}

/// Elements of each workspace buffer that `tokens` tokens of a layer shaped like a config
/// need: what [`MoeWorkspace::new`] allocates and what `forward` checks, computed once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WorkspaceLengths {
    /// `logits`: T·E.
    logits: usize,
    /// `topk_ids`, `topk_w`, `perm_src`, `perm_dst`: T·k routed rows.
    rows: usize,
    /// `counts`: E.
    counts: usize,
    /// `offsets`: E + 1.
    offsets: usize,
    /// `a_perm`, `h2`: T·k·H.
    hidden_rows: usize,
    /// `h1`: T·k·2I.
    gate_up_rows: usize,
    /// `a2`: T·k·I.
    act_rows: usize,
}

impl WorkspaceLengths {
    /// The lengths for `tokens` tokens of `config` (validated); refused where routed rows
    /// exceed the kernels' 32-bit row indices or a size overflows an address.
    fn new(config: &MoeConfig, tokens: usize) -> Result<WorkspaceLengths> {
        let (e, k, h, i) = (config.experts, config.top_k, config.hidden, config.intermediate);
        let too_many = |requirement| Error::Shape { what: "tokens", value: tokens, requirement };
        let rows = tokens
            .checked_mul(k)
            .filter(|&rows| rows <= u32::MAX as usize)
            .ok_or_else(|| too_many("tokens · top_k at most 2^32 - 1 (the kernels' row indices)"))?;
        let times = |a: usize, b: usize| {
            a.checked_mul(b).ok_or_else(|| too_many("buffers of tokens · top_k rows that fit an address"))
        };
        Ok(WorkspaceLengths {
            logits: times(tokens, e)?,
            rows,
            counts: e,
            offsets: e + 1,
            hidden_rows: times(rows, h)?,
            gate_up_rows: times(rows, times(2, i)?)?,
            act_rows: times(rows, i)?,
        })
    }

    /// Each length with the buffers it sizes, for comparing two sets of lengths.
    fn named(&self) -> [(&'static str, usize); 7] {
        [
            ("logits", self.logits),
            ("topk_ids, topk_w, perm_src, perm_dst", self.rows),
            ("counts", self.counts),
            ("offsets", self.offsets),
            ("a_perm, h2", self.hidden_rows),
            ("h1", self.gate_up_rows),
            ("a2", self.act_rows),
        ]
    }
}

/// The routing of the last `forward`, copied back to the host.
#[derive(Clone, Debug, PartialEq)]
pub struct Routing {
    /// `[T, k]` experts, best first.
    pub ids: Vec<u32>,
    /// `[T, k]` combine weights.
    pub weights: Vec<f32>,
    /// `[E + 1]` first permuted row of each expert.
    pub offsets: Vec<u32>,
    /// `[T·k]` assignment of each permuted row.
    pub perm_src: Vec<u32>,
}

/// The grouped-GEMM variants one `forward` ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardVariants {
    /// Gate/up projection.
    pub gate_up: Variant,
    /// Down projection.
    pub down: Variant,
}

impl MoeEngine {
    /// An engine for the device `ctx` is on, limited to `budget` bytes of shared memory per
    /// block if given, choosing STAGES by `policy`.
    pub fn new(ctx: &Arc<CudaContext>, budget: Option<usize>, policy: StagePolicy) -> Result<MoeEngine> {
        let gemm = GroupedGemm::new(ctx, budget)?.with_policy(policy);
        let kernels = MoeKernels::load(ctx, gemm.arch())?;
        Ok(MoeEngine { gemm, kernels, fused_activation: true, early_down_weights: true })
    }

    /// The same engine with the activation fused into the gate/up GEMM or not (on by default).
    /// Fused, the GEMM's epilogue applies the activation to each (gate, up) pair and writes the
    /// down projection's input directly: one kernel and one round trip of the gate/up output
    /// less, the same bits. It applies to layers whose gate and up rows are interleaved
    /// (gpt-oss); concatenated layouts always run the separate activation kernel.
    pub fn with_fused_activation(mut self, on: bool) -> MoeEngine {
        self.fused_activation = on;
        self
    }

    /// The same engine with input checks on or off (see [`GroupedGemm::with_input_checks`]; on
    /// by default in debug builds): with them on, the grouped GEMMs check their device data and
    /// [`MoeEngine::forward_routed`] the caller's expert ids.
    pub fn with_input_checks(mut self, on: bool) -> MoeEngine {
        self.gemm = self.gemm.with_input_checks(on);
        self
    }

    /// The same engine with its grouped GEMMs preferring `cache`'s tuned choices (see
    /// [`GroupedGemm::with_tuning`]: refused where the cache was made for another device or a
    /// smaller limit).
    pub fn with_tuning(mut self, cache: TuneCache) -> Result<MoeEngine> {
        self.gemm = self.gemm.with_tuning(cache)?;
        Ok(self)
    }

    /// The same engine with its grouped GEMMs choosing by the heuristic alone (no tune cache,
    /// not even the shipped one: see [`GroupedGemm::without_tuning`]).
    pub fn without_tuning(mut self) -> MoeEngine {
        self.gemm = self.gemm.without_tuning();
        self
    }

    /// The same engine with programmatic dependent launch on or off for every kernel it
    /// launches (see [`GroupedGemm::with_programmatic_launch`]; on by default on sm_90 and
    /// later).
    pub fn with_programmatic_launch(mut self, on: bool) -> MoeEngine {
        self.gemm = self.gemm.with_programmatic_launch(on);
        self.kernels.set_programmatic(on, self.gemm.arch());
        self
    }

    /// The same engine with the down projection's early weight copies on or off (on by
    /// default). On, a programmatically launched down GEMM (see
    /// [`MoeEngine::with_programmatic_launch`]) builds its tile table and copies the first
    /// K-tiles of its experts' weights while the gate/up GEMM before it finishes, and waits for
    /// it only before copying the activations: the layer's weight stream does not stop between
    /// the two projections. The same bits either way (the weights and the routing are the same
    /// data, read earlier).
    pub fn with_early_down_weights(mut self, on: bool) -> MoeEngine {
        self.early_down_weights = on;
        self
    }

    /// The grouped GEMM this engine launches.
    pub fn gemm(&self) -> &GroupedGemm {
        &self.gemm
    }

    /// Uploads one layer's host weights.
    pub fn upload(&self, stream: &Arc<CudaStream>, config: &MoeConfig, w: &MoeLayerWeights) -> Result<MoeLayer> {
        config.validate()?;
        w.check(config)?;
        let up = |v: &[f32]| stream.clone_htod(v).during("uploading a bias");
        Ok(MoeLayer {
            config: config.clone(),
            router: stream.clone_htod(&w.router).during("uploading the router")?,
            router_bias: up(&w.router_bias)?,
            gate_up: DeviceWeights::upload(stream, &w.gate_up)?,
            gate_up_bias: up(&w.gate_up_bias)?,
            down: DeviceWeights::upload(stream, &w.down)?,
            down_bias: up(&w.down_bias)?,
        })
    }

    /// A layer of seeded random weights generated on the device (see
    /// `MoeKernels::random_weights`), a random router and no biases. Nothing of the size of the
    /// weights touches the host.
    pub fn random_layer(&self, stream: &Arc<CudaStream>, config: &MoeConfig, seed: u64) -> Result<MoeLayer> {
        config.validate()?;
        let (e, h, i) = (config.experts, config.hidden, config.intermediate);
        let mut rng = crate::rng::SplitMix64::new(seed);
        let router: Vec<bf16> =
            (0..e * h).map(|_| bf16::from_f32(rng.uniform(-1.0, 1.0) / (h as f32).sqrt())).collect();
        let zeros = |len: usize| stream.alloc_zeros::<f32>(len).during("allocating a bias");
        Ok(MoeLayer {
            config: config.clone(),
            router: stream.clone_htod(&router).during("uploading the router")?,
            router_bias: zeros(e)?,
            gate_up: self.kernels.random_weights(stream, config.format, (e, 2 * i, h), seed.wrapping_add(1))?,
            gate_up_bias: zeros(e * 2 * i)?,
            down: self.kernels.random_weights(stream, config.format, (e, h, i), seed.wrapping_add(2))?,
            down_bias: zeros(e * h)?,
        })
    }

    /// `out = MoE(x)` for `tokens` rows of `x` (`[tokens, H]` bf16) into `out` (`[tokens, H]`),
    /// routed by the layer's own router. Allocates nothing: all intermediates live in `ws`, which
    /// must hold `tokens` tokens of this layer's shape (checked before anything runs). `x` and
    /// `out` may be whole buffers or views of parts of them.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        stream: &Arc<CudaStream>,
        layer: &MoeLayer,
        x: &impl DevicePtr<bf16>,
        tokens: usize,
        out: &mut impl DevicePtrMut<bf16>,
        ws: &mut MoeWorkspace,
        choice: TacticChoice<'_>,
    ) -> Result<ForwardVariants> {
        self.forward_with(stream, layer, x, tokens, out, ws, choice, self.gemm.input_checks(), None)
    }

    /// [`MoeEngine::forward`] with the grouped GEMMs' device-data checks on or off for this
    /// call (off while a stream is captured: see `moe::graph`), and timed by `events` if given.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_with(
        &self,
        stream: &Arc<CudaStream>,
        layer: &MoeLayer,
        x: &impl DevicePtr<bf16>,
        tokens: usize,
        out: &mut impl DevicePtrMut<bf16>,
        ws: &mut MoeWorkspace,
        choice: TacticChoice<'_>,
        input_checks: bool,
        mut events: Option<&mut StepEvents>,
    ) -> Result<ForwardVariants> {
        let c = &layer.config;
        check_call(c, tokens, x, out, ws)?;
        let (k, s) = (&self.kernels, MoeShape::new(c, tokens));
        mark(&mut events, stream, 0)?;
        // 1. Router logits. 2. Top-k experts and combine weights. 3. Assignments sorted by
        // expert. 4. Input rows gathered in that order. A small batch does all four in one launch.
        if MoeKernels::routes_small(&s) {
            let r = &mut ws.rest;
            k.route_small(
                stream,
                &s,
                (x, &layer.router, &layer.router_bias),
                (&mut ws.logits, &mut ws.topk_ids, &mut ws.topk_w),
                (&mut r.counts, &mut r.offsets, &mut r.perm_src, &mut r.perm_dst),
                &mut r.a_perm,
                &mut ws.counter,
            )?;
        } else {
            k.router(stream, &s, x, &layer.router, &layer.router_bias, &mut ws.logits)?;
            k.top_k(stream, &s, &ws.logits, &mut ws.topk_ids, &mut ws.topk_w)?;
            ws.rest.permute_and_gather(k, stream, &s, x, &ws.topk_ids)?;
        }
        mark(&mut events, stream, 1)?;
        self.experts(stream, layer, &s, (&ws.topk_ids, &ws.topk_w), out, &mut ws.rest, choice, input_checks, events)
    }

    /// `out = MoE(x)` for `tokens` rows of `x` with the caller's routing: `topk_ids`
    /// (`[tokens, top_k]` u32, each below the layer's expert count) and `topk_weights`
    /// (`[tokens, top_k]` f32, the combine weights as given: no softmax or renormalization is
    /// applied). The layer's router is not run. As [`MoeEngine::forward`] otherwise; with input
    /// checks on ([`GroupedGemm::with_input_checks`]) the ids are read back and checked first.
    /// With them off, an id out of range gives wrong rows for its token, never an access
    /// outside the buffers (the kernels clamp every index they read from device data).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_routed(
        &self,
        stream: &Arc<CudaStream>,
        layer: &MoeLayer,
        x: &impl DevicePtr<bf16>,
        topk_ids: &impl DevicePtr<u32>,
        topk_weights: &impl DevicePtr<f32>,
        tokens: usize,
        out: &mut impl DevicePtrMut<bf16>,
        ws: &mut MoeWorkspace,
        choice: TacticChoice<'_>,
    ) -> Result<ForwardVariants> {
        let c = &layer.config;
        check_call(c, tokens, x, out, ws)?;
        let s = MoeShape::new(c, tokens);
        let rows = s.rows();
        for (buffer, actual) in [("topk_ids", topk_ids.len()), ("topk_weights", topk_weights.len())] {
            if actual < rows {
                return Err(Error::BufferTooSmall { buffer, needed: rows, actual });
            }
        }
        let checks = self.gemm.input_checks();
        if checks {
            let ids = stream.clone_dtoh(topk_ids).during("reading the routing back")?;
            if let Some((index, &expert)) = ids[..rows].iter().enumerate().find(|(_, &id)| id as usize >= c.experts) {
                return Err(Error::ExpertId { index, expert, experts: c.experts });
            }
        }
        ws.rest.permute_and_gather(&self.kernels, stream, &s, x, topk_ids)?;
        self.experts(stream, layer, &s, (topk_ids, topk_weights), out, &mut ws.rest, choice, checks, None)
    }

    /// The layer after routing and the gather: gate/up, activation, down and the weighted
    /// combine (shapes and the workspace checked by the caller; the grouped GEMMs' device-data
    /// checks as `input_checks` says).
    #[allow(clippy::too_many_arguments)]
    fn experts(
        &self,
        stream: &Arc<CudaStream>,
        layer: &MoeLayer,
        s: &MoeShape,
        (topk_ids, topk_w): (&impl DevicePtr<u32>, &impl DevicePtr<f32>),
        out: &mut impl DevicePtrMut<bf16>,
        ws: &mut ExpertBuffers,
        choice: TacticChoice<'_>,
        input_checks: bool,
        mut events: Option<&mut StepEvents>,
    ) -> Result<ForwardVariants> {
        let (k, rows, c) = (&self.kernels, s.rows(), &layer.config);
        let fuse = self.fused_activation && c.gate_up_layout == GateUpLayout::Interleaved;
        // 5. Gate/up projection, one group per expert; 6. the activation, in its epilogue when
        // fused.
        let gated = fuse.then(|| GatedEpilogue { bias: layer.gate_up_bias.as_view(), activation: c.activation_ids() });
        let gate_up = self.gemm.run_fused(
            stream,
            GroupedGemmArgs {
                rows,
                a: ws.a_perm.as_view(),
                offsets: ws.offsets.as_view(),
                weights: layer.gate_up.view(),
                c: if fuse { ws.a2.as_view_mut() } else { ws.h1.as_view_mut() },
            },
            gated,
            choice,
            input_checks,
            false,
        )?;
        mark(&mut events, stream, 2)?;
        if !fuse {
            k.activate(stream, s, &ws.h1, &ws.perm_src, topk_ids, &layer.gate_up_bias, &mut ws.a2)?;
        }
        mark(&mut events, stream, 3)?;
        // 7. Down projection. 8. Weighted combine back into token order.
        let down = self.gemm.run_fused(
            stream,
            GroupedGemmArgs {
                rows,
                a: ws.a2.as_view(),
                offsets: ws.offsets.as_view(),
                weights: layer.down.view(),
                c: ws.h2.as_view_mut(),
            },
            None,
            choice,
            input_checks,
            // The kernel before it (the gate/up GEMM or the activation) writes only `a2`.
            self.early_down_weights,
        )?;
        mark(&mut events, stream, 4)?;
        // Right after the down GEMM, which writes only `h2` (`MoeKernels::combine`).
        k.combine(stream, s, &ws.h2, &ws.perm_dst, topk_ids, topk_w, &layer.down_bias, out)?;
        mark(&mut events, stream, 5)?;
        Ok(ForwardVariants { gate_up, down })
    }
}

/// The steps of a layer that [`MoeEngine::capture_decode_timed`] times, in order: routing (router,
/// top-k, permutation and gather), the gate/up GEMM, the activation, the down GEMM and the
/// weighted combine.
pub const LAYER_STEPS: [&str; 5] = ["routing", "gate_up", "activation", "down", "combine"];

/// Events around the steps of one layer call (`MoeEngine::capture_decode_timed`).
pub(crate) struct StepEvents {
    /// Before the layer, then after each of [`LAYER_STEPS`].
    events: Vec<CudaEvent>,
}

impl StepEvents {
    /// Events on `ctx` for one layer call.
    pub(crate) fn new(ctx: &Arc<CudaContext>) -> Result<StepEvents> {
        let events = (0..=LAYER_STEPS.len())
            .map(|_| ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)).during("creating an event"))
            .collect::<Result<_>>()?;
        Ok(StepEvents { events })
    }

    /// Records event `at` on `stream`; inside a stream capture it becomes an event-record node
    /// of the graph (an external record: a plain record there only orders the capture).
    fn record(&mut self, stream: &Arc<CudaStream>, at: usize) -> Result<()> {
        let event = &self.events[at];
        if event.context() != stream.context() {
            return Err(Error::Context {
                buffer: "stream",
                expected: event.context().ordinal(),
                actual: stream.context().ordinal(),
            });
        }
        stream.context().bind_to_thread().during("binding the context")?;
        // SAFETY: the event and the stream are live handles of the same context, bound to this
        // thread; recording touches no memory of ours.
        unsafe {
            cuEventRecordWithFlags(
                event.cu_event(),
                stream.cu_stream(),
                CUevent_record_flags::CU_EVENT_RECORD_EXTERNAL as u32,
            )
        }
        .result()
        .during("recording an event")
    }

    /// Each step's GPU time in µs (the time from the end of the step before it, so the gaps
    /// between kernels count to the step they precede); waits for the events.
    pub(crate) fn times_us(&self) -> Result<[f64; LAYER_STEPS.len()]> {
        let mut times = [0.0; LAYER_STEPS.len()];
        for (i, time) in times.iter_mut().enumerate() {
            *time = self.events[i].elapsed_ms(&self.events[i + 1]).during("reading an event")? as f64 * 1e3;
        }
        Ok(times)
    }
}

/// Records event `at` of `events`, if timing.
fn mark(events: &mut Option<&mut StepEvents>, stream: &Arc<CudaStream>, at: usize) -> Result<()> {
    match events {
        Some(events) => events.record(stream, at),
        None => Ok(()),
    }
}

impl ExpertBuffers {
    /// Steps 3 and 4 for the routing `topk_ids`: assignments sorted by expert, and the input
    /// rows gathered in that order.
    fn permute_and_gather(
        &mut self,
        k: &MoeKernels,
        stream: &Arc<CudaStream>,
        s: &MoeShape,
        x: &impl DevicePtr<bf16>,
        topk_ids: &impl DevicePtr<u32>,
    ) -> Result<()> {
        k.permute(stream, s, topk_ids, &mut self.counts, &mut self.offsets, &mut self.perm_src, &mut self.perm_dst)?;
        k.gather(stream, s, x, &self.perm_src, &mut self.a_perm)
    }
}

/// Refuses a call of `tokens` tokens whose workspace cannot hold them, or whose `x` or `out` is
/// shorter than `tokens` rows of the layer's hidden size.
fn check_call(
    config: &MoeConfig,
    tokens: usize,
    x: &impl DeviceSlice<bf16>,
    out: &impl DeviceSlice<bf16>,
    ws: &MoeWorkspace,
) -> Result<()> {
    ws.check_holds(config, tokens)?;
    let needed = tokens.saturating_mul(config.hidden);
    for (buffer, actual) in [("x", x.len()), ("out", out.len())] {
        if actual < needed {
            return Err(Error::BufferTooSmall { buffer, needed, actual });
        }
    }
    Ok(())
}

impl MoeLayer {
    /// The layer's configuration.
    pub fn config(&self) -> &MoeConfig {
        &self.config
    }

    /// Copies the weights back to the host (for checking against the CPU reference).
    pub fn download(&self, stream: &Arc<CudaStream>) -> Result<MoeLayerWeights> {
        let down = |v: &CudaSlice<f32>| stream.clone_dtoh(v).during("downloading a bias");
        Ok(MoeLayerWeights {
            router: stream.clone_dtoh(&self.router).during("downloading the router")?,
            router_bias: down(&self.router_bias)?,
            gate_up: self.gate_up.download(stream)?,
            gate_up_bias: down(&self.gate_up_bias)?,
            down: self.down.download(stream)?,
            down_bias: down(&self.down_bias)?,
        })
    }
}

impl MoeWorkspace {
    /// Buffers for up to `max_tokens` tokens of layers shaped like `config`. A `max_tokens`
    /// whose routed rows (`max_tokens · top_k`) exceed the kernels' 32-bit row indices is
    /// refused; one the device cannot hold comes back as the driver's out-of-memory error.
    pub fn new(stream: &Arc<CudaStream>, config: &MoeConfig, max_tokens: usize) -> Result<MoeWorkspace> {
        config.validate()?;
        let n = WorkspaceLengths::new(config, max_tokens.max(1)).map_err(|e| match e {
            Error::Shape { value, requirement, .. } => Error::Shape { what: "max_tokens", value, requirement },
            other => other,
        })?;
        let alloc_u32 = |len: usize| stream.alloc_zeros::<u32>(len).during("allocating the workspace");
        let alloc_f32 = |len: usize| stream.alloc_zeros::<f32>(len).during("allocating the workspace");
        let alloc_bf16 = |len: usize| stream.alloc_zeros::<bf16>(len).during("allocating the workspace");
        Ok(MoeWorkspace {
            max_tokens,
            sized_for: config.clone(),
            capacity: n,
            logits: alloc_f32(n.logits)?,
            topk_ids: alloc_u32(n.rows)?,
            topk_w: alloc_f32(n.rows)?,
            counter: alloc_u32(1)?,
            rest: ExpertBuffers {
                counts: alloc_u32(n.counts)?,
                offsets: alloc_u32(n.offsets)?,
                perm_src: alloc_u32(n.rows)?,
                perm_dst: alloc_u32(n.rows)?,
                a_perm: alloc_bf16(n.hidden_rows)?,
                h1: alloc_bf16(n.gate_up_rows)?,
                a2: alloc_bf16(n.act_rows)?,
                h2: alloc_bf16(n.hidden_rows)?,
            },
        })
    }

    /// The most tokens one `forward` of a layer shaped like the workspace's config may take.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Refuses `tokens` tokens of a layer shaped like `config` unless every buffer holds what
    /// they need: the check `forward` makes before any launch.
    pub fn check_holds(&self, config: &MoeConfig, tokens: usize) -> Result<()> {
        if tokens > self.max_tokens {
            return Err(Error::Shape {
                what: "tokens",
                value: tokens,
                requirement: "at most the workspace's max_tokens",
            });
        }
        let needed = WorkspaceLengths::new(config, tokens)?;
        let holds =
            needed.named().into_iter().zip(self.capacity.named()).map(|((buffer, n), (_, cap))| (buffer, n, cap));
        match holds.into_iter().find(|(_, needed, actual)| needed > actual) {
            None => Ok(()),
            Some((buffer, needed, actual)) => Err(Error::Workspace {
                buffer,
                needed,
                actual,
                asked: format!("{tokens} tokens of {}", config.shape_summary()),
                sized_for: format!("{} tokens of {}", self.max_tokens, self.sized_for.shape_summary()),
            }),
        }
    }

    /// The routing and permutation of the last `forward` of `tokens` tokens with `config` (after
    /// a `forward_routed`, the permutation is its own and the ids and weights those of the last
    /// `forward`).
    pub fn routing(&self, stream: &Arc<CudaStream>, tokens: usize, config: &MoeConfig) -> Result<Routing> {
        self.check_holds(config, tokens)?;
        let n = tokens * config.top_k;
        let get = |s: &CudaSlice<u32>, len: usize| -> Result<Vec<u32>> {
            Ok(stream.clone_dtoh(s).during("downloading the routing")?[..len].to_vec())
        };
        Ok(Routing {
            ids: get(&self.topk_ids, n)?,
            weights: stream.clone_dtoh(&self.topk_w).during("downloading the routing")?[..n].to_vec(),
            offsets: get(&self.rest.offsets, config.experts + 1)?,
            perm_src: get(&self.rest.perm_src, n)?,
        })
    }
}
