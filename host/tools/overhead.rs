//! `stagefit overhead`: what a grouped-GEMM call costs the host, measured on the GPU machine.
//!
//! On a decode-sized problem (gpt-oss-20b's down projection at 1 token: 4 rows over 32
//! experts), it reports:
//! - the cold start: a fresh handle's first call, which JIT-compiles the one module it needs
//!   (and only that one: the handle's loaded-module count is reported);
//! - the steady-state CPU time of a call (from `run` to its return, the launch included), over
//!   many calls, with the stream synchronized every [`SYNC_EVERY`] calls so the launch queue
//!   never fills and blocks;
//! - the device memory free before and after those calls (equal: no allocation on the path);
//! - a CUDA graph of [`GRAPH_CALLS`] captured calls, its replay time per call, and whether its
//!   output is bit-identical to the same calls run eagerly.

use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{CudaContext, CudaStream};
use half::bf16;
use serde::Serialize;

use crate::error::{DriverContext, Result};
use crate::gemm::{GroupedGemm, TacticChoice};
use crate::heuristic::ProblemShape;
use crate::moe::kernels::MoeKernels;
use crate::tools::problem::{median_us, RandomProblem};
use crate::Fp4Format;

/// Calls between synchronizations in the steady-state loop.
pub const SYNC_EVERY: usize = 64;
/// Calls captured into the graph.
pub const GRAPH_CALLS: usize = 16;

/// What `stagefit overhead` measured.
#[derive(Clone, Debug, Serialize)]
pub struct OverheadReport {
    /// The problem: experts, rows, N, K.
    pub problem: (usize, usize, usize, usize),
    /// The variant the calls ran.
    pub variant: String,
    /// A fresh handle's first call until `run` returned (module JIT included), in ms.
    pub cold_first_call_ms: f64,
    /// The same, until the kernel finished, in ms.
    pub cold_first_result_ms: f64,
    /// Modules the handle had loaded after all calls.
    pub modules_loaded: usize,
    /// Steady-state CPU time per call: median, 99th percentile and maximum, in µs.
    pub cpu_us_median: f64,
    /// 99th percentile of the above.
    pub cpu_us_p99: f64,
    /// Maximum of the above.
    pub cpu_us_max: f64,
    /// Calls timed.
    pub calls: usize,
    /// Median CPU time of the variant choice alone (`GroupedGemm::select`), in µs: the rest
    /// of a call is validation and the driver's launch.
    pub select_us_median: f64,
    /// Free device memory before and after the timed calls, in bytes.
    pub free_bytes_before_after: (usize, usize),
    /// Kernel time per call, eager (median of event-timed calls), in µs.
    pub eager_us: f64,
    /// Kernel time per call replaying the graph, in µs.
    pub graph_us_per_call: f64,
    /// Whether the graph's output equals the eager calls' output bit for bit.
    pub graph_output_identical: bool,
}

/// Measures the host cost of grouped-GEMM calls on device `device` (see the module docs).
pub fn measure(device: usize, calls: usize) -> Result<OverheadReport> {
    let ctx = crate::device::context(device)?;
    // One stream: cudarc's cross-stream event tracking is not needed, and its event waits
    // would break the graph capture.
    // SAFETY: every buffer below is used on `stream` only.
    unsafe { ctx.disable_event_tracking() };
    let stream = ctx.new_stream().during("creating a stream")?;
    let (experts, top_k, n, k) = (32, 4, 2880, 2880);
    let probe = GroupedGemm::new(&ctx, None)?;
    let kernels = MoeKernels::load(&ctx, probe.arch())?;
    let mut problem = RandomProblem::new(&kernels, &stream, Fp4Format::Mxfp4, (experts, top_k, 1), (n, k), 3, None)?;
    let rows = problem.rows;
    stream.synchronize().during("synchronizing")?;

    // Cold start: a fresh handle, nothing loaded.
    let gemm = GroupedGemm::new(&ctx, None)?.with_input_checks(false);
    let start = Instant::now();
    let variant = problem.run(&gemm, &stream, TacticChoice::Auto, 0)?;
    let cold_first_call_ms = start.elapsed().as_secs_f64() * 1e3;
    stream.synchronize().during("synchronizing")?;
    let cold_first_result_ms = start.elapsed().as_secs_f64() * 1e3;

    // Steady state.
    let free_before = ctx.mem_get_info().during("reading free memory")?.0;
    let mut cpu_us = Vec::with_capacity(calls);
    for i in 0..calls.max(1) {
        let start = Instant::now();
        problem.run(&gemm, &stream, TacticChoice::Auto, 0)?;
        cpu_us.push(start.elapsed().as_secs_f64() * 1e6);
        if (i + 1) % SYNC_EVERY == 0 {
            stream.synchronize().during("synchronizing")?;
        }
    }
    stream.synchronize().during("synchronizing")?;
    let free_after = ctx.mem_get_info().during("reading free memory")?.0;
    let median = |times: &mut Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let shape = ProblemShape { rows, groups: experts, n, k };
    let mut select_us = Vec::with_capacity(calls);
    for _ in 0..calls.max(1) {
        let start = Instant::now();
        gemm.select(Fp4Format::Mxfp4, &shape, TacticChoice::Auto)?;
        select_us.push(start.elapsed().as_secs_f64() * 1e6);
    }
    cpu_us.sort_by(f64::total_cmp);
    let at = |q: f64| cpu_us[((cpu_us.len() - 1) as f64 * q).round() as usize];

    let eager_us = median_us(&ctx, &stream, 20, |_| problem.run(&gemm, &stream, TacticChoice::Auto, 0).map(|_| ()))?;
    let (graph_us, identical) = graph(&ctx, &stream, &gemm, &mut problem)?;
    Ok(OverheadReport {
        problem: (experts, rows, n, k),
        variant: format!("{} S={}", variant.tactic.name, variant.stages),
        cold_first_call_ms,
        cold_first_result_ms,
        modules_loaded: gemm.loaded_modules(),
        cpu_us_median: at(0.5),
        cpu_us_p99: at(0.99),
        cpu_us_max: at(1.0),
        calls: cpu_us.len(),
        select_us_median: median(&mut select_us),
        free_bytes_before_after: (free_before, free_after),
        eager_us,
        graph_us_per_call: graph_us / GRAPH_CALLS as f64,
        graph_output_identical: identical,
    })
}

/// Captures [`GRAPH_CALLS`] calls into a graph, times a replay, and compares its output with
/// the eager calls' output.
fn graph(
    ctx: &Arc<CudaContext>,
    stream: &Arc<CudaStream>,
    gemm: &GroupedGemm,
    problem: &mut RandomProblem,
) -> Result<(f64, bool)> {
    let poison = vec![bf16::from_bits(0x7FC0); problem.output().len()];
    stream.memcpy_htod(&poison, problem.output()).during("poisoning the output")?;
    problem.run(gemm, stream, TacticChoice::Auto, 0)?;
    let eager = stream.clone_dtoh(problem.output()).during("downloading the output")?;
    stream.memcpy_htod(&poison, problem.output()).during("poisoning the output")?;
    stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED).during("capturing")?;
    let captured = (0..GRAPH_CALLS).try_for_each(|_| problem.run(gemm, stream, TacticChoice::Auto, 0).map(|_| ()));
    let graph = stream
        .end_capture(CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH)
        .during("instantiating the graph")?;
    captured?;
    let Some(graph) = graph else {
        return Ok((f64::NAN, false));
    };
    graph.launch().during("replaying the graph")?;
    let replayed = stream.clone_dtoh(problem.output()).during("downloading the output")?;
    let identical = replayed.iter().zip(&eager).all(|(a, b)| a.to_bits() == b.to_bits());
    let us = median_us(ctx, stream, 20, |_| graph.launch().during("replaying the graph"))?;
    Ok((us, identical))
}
