//! `stagefit bench`: the grouped GEMM timed on MoE shapes, next to the device's measured copy
//! bandwidth, its measured dense bf16 rate, and a cuBLAS bf16 baseline on the same problem.
//!
//! For each case (preset, projection, tokens, routing, format, budget): the group sizes come
//! from routing `tokens` tokens to `top_k` of `experts` experts (uniformly, or Zipf-skewed);
//! weights are random and rotated across enough copies that L2 cannot hold the experts a call
//! touches; each time is the median of `reps` event-timed runs after a warm-up. With graph
//! timing, each case is also timed as [`GRAPH_CALLS`] back-to-back calls over the rotated
//! weight copies captured in one CUDA graph (median replay time per call), which is how decode
//! runs in an engine. The cuBLAS baseline runs one bf16 GEMM per non-empty expert on bf16
//! weights, captured in a CUDA graph so launch gaps do not count.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use half::bf16;
use serde::Serialize;

use crate::error::{DriverContext, Error, Result};
use crate::gemm::{offsets_from_sizes, DeviceWeights, GroupedGemm, GroupedGemmArgs, TacticChoice};
use crate::moe::kernels::MoeKernels;
use crate::moe::Preset;
use crate::rng::SplitMix64;
use crate::tools::baseline::{Baseline, Bf16Problem};
use crate::tools::problem::{fill_bf16, graph_us_per_call, median_us, weight_copies_past_l2};
use crate::Fp4Format;

/// How tokens pick experts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Routing {
    /// Every expert equally likely.
    Uniform,
    /// Expert of popularity rank r chosen with weight 1 / (r + 1)^1.2.
    Zipf,
}

/// Which projection of the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Projection {
    /// `[2I × H]`.
    GateUp,
    /// `[H × I]`.
    Down,
}

/// Rows per expert when `tokens` tokens each pick `top_k` distinct experts.
pub fn group_sizes(experts: usize, top_k: usize, tokens: usize, routing: Routing, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed);
    let weights: Vec<f64> = (0..experts)
        .map(|r| match routing {
            Routing::Uniform => 1.0,
            Routing::Zipf => 1.0 / ((r + 1) as f64).powf(1.2),
        })
        .collect();
    let mut sizes = vec![0usize; experts];
    for _ in 0..tokens {
        let mut chosen: Vec<usize> = Vec::with_capacity(top_k);
        while chosen.len() < top_k.min(experts) {
            let total: f64 = (0..experts).filter(|e| !chosen.contains(e)).map(|e| weights[e]).sum();
            let mut x = rng.uniform(0.0, 1.0) as f64 * total;
            let pick = (0..experts)
                .filter(|e| !chosen.contains(e))
                .find(|&e| {
                    x -= weights[e];
                    x <= 0.0
                })
                .unwrap_or_else(|| (0..experts).rev().find(|e| !chosen.contains(e)).expect("an expert is left"));
            chosen.push(pick);
        }
        for e in chosen {
            sizes[e] += 1;
        }
    }
    sizes
}

/// What the bench runs.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Model presets.
    pub presets: Vec<Preset>,
    /// Token counts.
    pub tokens: Vec<usize>,
    /// Routings.
    pub routings: Vec<Routing>,
    /// Formats.
    pub formats: Vec<Fp4Format>,
    /// Budgets (`None` = the device's own limit).
    pub budgets: Vec<Option<usize>>,
    /// Timed runs per measurement (after warm-up).
    pub reps: usize,
    /// Whether to run the cuBLAS baseline (needs libcublas).
    pub cublas: bool,
    /// The variants each case runs, in order: `auto` (the tuned or heuristic choice), a tactic
    /// name (at its deepest fitting STAGES) or `NAME:STAGES`.
    pub choices: Vec<String>,
    /// Also time each case as [`GRAPH_CALLS`] calls captured in one CUDA graph.
    pub graph: bool,
    /// What `auto` prefers to the heuristic.
    pub tuning: Tuning,
    /// The device ordinal.
    pub device: usize,
}

/// What the bench's `auto` choice prefers to the heuristic.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Tuning {
    /// The shipped tune cache where the device and budget have one (the library's default).
    Shipped,
    /// The heuristic alone.
    Heuristic,
    /// A tune cache from a file (used for the budgets it was made for; the heuristic at others).
    Cache(crate::tuned::TuneCache),
}

impl Tuning {
    /// The choice a command line names: `shipped`, `heuristic`, or a tune cache file (loaded
    /// and checked here, before any GPU work).
    pub fn parse(choice: &str) -> crate::error::Result<Tuning> {
        Ok(match choice {
            "shipped" => Tuning::Shipped,
            "heuristic" => Tuning::Heuristic,
            path => Tuning::Cache(crate::tuned::TuneCache::load(path.as_ref())?),
        })
    }
}

/// The device's two ceilings, measured in the same run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Ceilings {
    /// Device-to-device copy, bytes read plus written per second, in GB/s.
    pub copy_gb_s: f64,
    /// cuBLAS bf16 8192³ GEMM, TFLOP/s (`None` without cuBLAS).
    pub bf16_tflop_s: Option<f64>,
}

/// One measured case.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    /// Preset name.
    pub preset: &'static str,
    /// Projection.
    pub projection: Projection,
    /// Tokens routed.
    pub tokens: usize,
    /// Routing.
    pub routing: Routing,
    /// Format.
    pub format: &'static str,
    /// Shared-memory budget in force.
    pub budget_bytes: usize,
    /// GEMM rows (tokens · top_k), N and K.
    pub shape: (usize, usize, usize),
    /// Experts with at least one row.
    pub active_experts: usize,
    /// The variant run: tactic and STAGES.
    pub tactic: &'static str,
    /// STAGES.
    pub stages: usize,
    /// Median kernel time, microseconds.
    pub time_us: f64,
    /// Median time per call of [`GRAPH_CALLS`] calls replayed from one CUDA graph, microseconds.
    pub graph_us: Option<f64>,
    /// Of the measured copy bandwidth at the graph timing, percent.
    pub graph_pct_copy_bw: Option<f64>,
    /// TFLOP/s.
    pub tflop_s: f64,
    /// Bytes moved: FP4 weights and scales of the active experts, activations in, outputs out.
    pub bytes: usize,
    /// GB/s.
    pub gb_s: f64,
    /// Of the measured copy bandwidth, percent.
    pub pct_copy_bw: f64,
    /// Of the measured bf16 rate, percent.
    pub pct_bf16_rate: Option<f64>,
    /// The roofline floor (max of bytes / copy bandwidth and flops / bf16 rate) over the time, percent.
    pub pct_roofline: f64,
    /// cuBLAS bf16 baseline (graph of per-expert GEMMs), microseconds.
    pub cublas_us: Option<f64>,
    /// cuBLAS time over ours (above 1: we are faster).
    pub speedup_vs_cublas: Option<f64>,
    /// cuBLAS bf16 grouped baseline (one `cublasGemmGroupedBatchedEx` call), microseconds.
    pub cublas_grouped_us: Option<f64>,
    /// The grouped baseline's time over ours (above 1: we are faster).
    pub speedup_vs_cublas_grouped: Option<f64>,
}

/// Everything one bench run measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Device name.
    pub device: String,
    /// The ceilings.
    pub ceilings: Ceilings,
    /// Every case.
    pub rows: Vec<BenchRow>,
}

/// Calls per graph in the graph timing.
pub const GRAPH_CALLS: usize = 20;

/// What a bench choice names: `auto`, a tactic, or `NAME:STAGES`.
pub fn parse_choice(text: &str) -> Result<TacticChoice<'_>> {
    match text.split_once(':') {
        _ if text == "auto" => Ok(TacticChoice::Auto),
        None => Ok(TacticChoice::Tactic(text)),
        Some((tactic, stages)) => match stages.parse() {
            Ok(stages) => Ok(TacticChoice::Variant { tactic, stages }),
            Err(_) => Err(Error::UnknownVariant(format!("{text}: STAGES after ':' must be a number"))),
        },
    }
}

/// Measures the copy bandwidth and (with the cuBLAS baseline) the dense bf16 rate.
fn ceilings(
    ctx: &Arc<CudaContext>,
    stream: &Arc<CudaStream>,
    kernels: &MoeKernels,
    baseline: Option<&Baseline>,
    reps: usize,
) -> Result<Ceilings> {
    let bytes = 1usize << 30;
    let src = stream.alloc_zeros::<u8>(bytes).during("allocating")?;
    let mut dst = stream.alloc_zeros::<u8>(bytes).during("allocating")?;
    let copy_us = median_us(ctx, stream, reps, |_| stream.memcpy_dtod(&src, &mut dst).during("copying"))?;
    let bf16_tflop_s = baseline.map(|b| b.bf16_tflop_s(ctx, stream, kernels, reps)).transpose()?;
    Ok(Ceilings { copy_gb_s: 2.0 * bytes as f64 / copy_us / 1e3, bf16_tflop_s })
}

/// Runs every case of `options` on device `options.device`.
pub fn run(options: &BenchOptions, mut progress: impl FnMut(&BenchRow)) -> Result<BenchReport> {
    let ctx = crate::device::context(options.device)?;
    // SAFETY: everything below runs on this one stream, in order, so cudarc's cross-stream
    // event tracking is not needed; its event waits would also break the graph capture.
    unsafe { ctx.disable_event_tracking() };
    let stream = ctx.new_stream().during("creating a stream")?;
    let probe = GroupedGemm::new(&ctx, None)?;
    let device = probe.device().clone();
    let kernels = MoeKernels::load(&ctx, probe.arch())?;
    // Budgets at which the tune cache does not apply (said once each).
    let mut untuned_budgets = std::collections::HashSet::new();
    let baseline = if options.cublas { Some(Baseline::new(&stream)?) } else { None };
    let ceilings = ceilings(&ctx, &stream, &kernels, baseline.as_ref(), options.reps)?;
    let mut rows = Vec::new();
    for preset in &options.presets {
        let c = &preset.config;
        for format in &options.formats {
            for (projection, n, k) in
                [(Projection::GateUp, 2 * c.intermediate, c.hidden), (Projection::Down, c.hidden, c.intermediate)]
            {
                let expert_bytes = crate::fp4::weight_bytes(*format, n * k);
                let max_rows = options.tokens.iter().max().copied().unwrap_or(1) * c.top_k;
                let a = fill_bf16(&kernels, &stream, max_rows.max(1) * k, 3)?;
                let mut out = stream.alloc_zeros::<bf16>(max_rows.max(1) * n).during("allocating")?;
                // Enough weight copies that the experts one call touches cannot stay in L2.
                let mut copies: Vec<DeviceWeights> = Vec::new();
                let mut bf16_weights: Option<CudaSlice<bf16>> = None;
                for &tokens in &options.tokens {
                    for &routing in &options.routings {
                        let sizes = group_sizes(c.experts, c.top_k, tokens, routing, 7 + tokens as u64);
                        let active = sizes.iter().filter(|&&s| s > 0).count();
                        let wanted = weight_copies_past_l2(device.l2_bytes, active, expert_bytes);
                        while copies.len() < wanted {
                            copies.push(kernels.random_weights(
                                &stream,
                                *format,
                                (c.experts, n, k),
                                100 + copies.len() as u64,
                            )?);
                        }
                        let offsets = offsets_from_sizes(&sizes)?;
                        let rows_total = tokens * c.top_k;
                        let offsets_dev = stream.clone_htod(&offsets).during("uploading offsets")?;
                        let (cublas_us, cublas_grouped_us) = match &baseline {
                            Some(baseline) => {
                                let w = match bf16_weights.take() {
                                    Some(w) => w,
                                    None => fill_bf16(&kernels, &stream, c.experts * n * k, 9)?,
                                };
                                let mut problem =
                                    Bf16Problem { w: &w, a: &a, out: &mut out, offsets: &offsets, shape: (n, k) };
                                let (looped, grouped) =
                                    baseline.expert_gemms_us(&ctx, &stream, &mut problem, options.reps)?;
                                bf16_weights = Some(w);
                                (Some(looped), Some(grouped))
                            }
                            None => (None, None),
                        };
                        for &budget in &options.budgets {
                            let gemm = GroupedGemm::new(&ctx, budget)?;
                            let gemm = match &options.tuning {
                                Tuning::Shipped => gemm,
                                Tuning::Heuristic => gemm.without_tuning(),
                                Tuning::Cache(cache)
                                    if cache.compatibility(gemm.device(), gemm.limit().bytes()).applies() =>
                                {
                                    gemm.with_tuning(cache.clone())?
                                }
                                Tuning::Cache(cache) => {
                                    if untuned_budgets.insert(budget) {
                                        tracing::warn!(
                                            "the tune cache was made for {}, not {} (cc {:?}) at a {}-byte limit: the heuristic chooses instead",
                                            cache.made_for(),
                                            gemm.device().name,
                                            gemm.device().compute_capability,
                                            gemm.limit().bytes()
                                        );
                                    }
                                    gemm.without_tuning()
                                }
                            };
                            for choice_text in &options.choices {
                                let choice = parse_choice(choice_text)?;
                                let mut variant = None;
                                let mut call = |i: usize| -> Result<()> {
                                    let args = GroupedGemmArgs {
                                        rows: rows_total,
                                        a: a.as_view(),
                                        offsets: offsets_dev.as_view(),
                                        weights: copies[i % copies.len()].view(),
                                        c: out.as_view_mut(),
                                    };
                                    variant = Some(gemm.run(&stream, args, choice)?);
                                    Ok(())
                                };
                                let us = median_us(&ctx, &stream, options.reps, &mut call)?;
                                let graph_us = match options.graph {
                                    true => Some(graph_us_per_call(&ctx, &stream, options.reps, &mut call)?),
                                    false => None,
                                };
                                let variant = variant.expect("ran at least once");
                                let flops = 2.0 * (rows_total * n * k) as f64;
                                let bytes = active * expert_bytes + rows_total * (k + n) * 2;
                                let pct_copy_bw = |us: f64| 100.0 * bytes as f64 / us / 1e3 / ceilings.copy_gb_s;
                                let floor_us = (bytes as f64 / ceilings.copy_gb_s / 1e3)
                                    .max(ceilings.bf16_tflop_s.map_or(0.0, |r| flops / r / 1e6));
                                let row = BenchRow {
                                    preset: preset.name,
                                    projection,
                                    tokens,
                                    routing,
                                    format: format.name(),
                                    budget_bytes: gemm.limit().bytes(),
                                    shape: (rows_total, n, k),
                                    active_experts: active,
                                    tactic: variant.tactic.name,
                                    stages: variant.stages,
                                    time_us: us,
                                    graph_us,
                                    graph_pct_copy_bw: graph_us.map(pct_copy_bw),
                                    tflop_s: flops / us / 1e6,
                                    bytes,
                                    gb_s: bytes as f64 / us / 1e3,
                                    pct_copy_bw: pct_copy_bw(us),
                                    pct_bf16_rate: ceilings.bf16_tflop_s.map(|r| 100.0 * flops / us / 1e6 / r),
                                    pct_roofline: 100.0 * floor_us / us,
                                    cublas_us,
                                    speedup_vs_cublas: cublas_us.map(|c| c / us),
                                    cublas_grouped_us,
                                    speedup_vs_cublas_grouped: cublas_grouped_us.map(|c| c / us),
                                };
                                progress(&row);
                                rows.push(row);
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(BenchReport { device: device.name, ceilings, rows })
}
