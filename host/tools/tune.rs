//! `stagefit tune`: time every runnable (tactic, STAGES) for a problem on this device and
//! budget, and keep the fastest in a [`crate::tuned::TuneCache`] entry.
//!
//! Each variant is timed the way decode runs it: back-to-back calls captured in one CUDA graph,
//! rotating over weight copies that L2 cannot hold (median time per call). A single
//! event-timed call on one weight copy ranks variants differently where a call is short: at
//! 1 token gpt-oss's 4 experts fit in the H100's 50 MB L2, and the launch is a fifth of the
//! call (`docs/perf-notes.md`, v12).

use std::sync::Arc;

use cudarc::driver::CudaStream;

use crate::error::Result;
use crate::gemm::{GroupedGemm, Selection, TacticChoice};
use crate::heuristic::ProblemShape;
use crate::moe::kernels::MoeKernels;
use crate::tools::problem::{graph_us_per_call, RandomProblem};
use crate::tuned::{rows_bucket, TuneEntry, VariantTiming};
use crate::Fp4Format;

/// Times every runnable (tactic, STAGES) of `gemm` on a random problem of `tokens` tokens
/// routed uniformly to `top_k` of `groups` experts with `[n × k]` weights (graph timing over
/// weight copies rotated past L2, see the module docs); returns the fastest and the
/// heuristic's choice with their times (the heuristic's, not any tune cache's). `stream` must
/// be one a graph capture can record: its context's event tracking off
/// (`CudaContext::disable_event_tracking`), or this is [`crate::Error::Capture`].
#[allow(clippy::too_many_arguments)]
pub fn tune_problem(
    gemm: &GroupedGemm,
    stream: &Arc<CudaStream>,
    format: Fp4Format,
    (groups, top_k, tokens): (usize, usize, usize),
    (n, k): (usize, usize),
    reps: usize,
) -> Result<TuneEntry> {
    let ctx = stream.context().clone();
    let kernels = MoeKernels::load(&ctx, gemm.arch())?;
    let past_l2_of = Some(gemm.device().l2_bytes);
    let mut problem =
        RandomProblem::new(&kernels, stream, format, (groups, top_k, tokens), (n, k), 11 + tokens as u64, past_l2_of)?;
    let rows = problem.rows;
    let mut time = |choice: TacticChoice<'_>| -> Result<(String, usize, f64)> {
        let mut ran = None;
        let us = graph_us_per_call(&ctx, stream, reps, |call| {
            ran = Some(problem.run(gemm, stream, choice, call)?);
            Ok(())
        })?;
        let v = ran.expect("ran");
        Ok((v.tactic.name.to_string(), v.stages, us))
    };
    let shape = ProblemShape { rows, groups, n, k };
    let heuristic_only = Selection { tuned: None, ..gemm.selection() };
    let (tactic, stages) = heuristic_only.select(format, &shape, TacticChoice::Auto)?;
    let (heuristic, heuristic_stages, heuristic_us) = time(TacticChoice::Variant { tactic: tactic.name, stages })?;
    let mut best = (heuristic.clone(), heuristic_stages, heuristic_us);
    let mut timings = Vec::new();
    for plan in gemm.plan().iter().filter(|p| p.runnable()) {
        for &stages in plan.tactic.stages.iter().filter(|&&s| s <= plan.stages.unwrap_or(0)) {
            let t = time(TacticChoice::Variant { tactic: plan.tactic.name, stages })?;
            timings.push(VariantTiming { tactic: t.0.clone(), stages: t.1, us: t.2 });
            if t.2 < best.2 {
                best = t;
            }
        }
    }
    Ok(TuneEntry {
        format: format.name().into(),
        groups,
        n,
        k,
        rows_bucket: rows_bucket(rows),
        tactic: best.0,
        stages: best.1,
        time_us: best.2,
        heuristic: format!("{heuristic} S={heuristic_stages}"),
        heuristic_us,
        timings,
    })
}
