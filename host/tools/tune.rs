//! `stagefit tune`: time every runnable (tactic, STAGES) for a problem on this device and
//! budget, and keep the fastest in a [`crate::tuned::TuneCache`] entry.
//!
//! Each variant is timed on one or more routing draws (its time is their mean), each the way
//! decode runs it: back-to-back calls captured in one CUDA graph, rotating over weight copies
//! that L2 cannot hold (median time per call). A single
//! event-timed call on one weight copy ranks variants differently where a call is short: at
//! 1 token gpt-oss's 4 experts fit in the H100's 50 MB L2, and the launch is a fifth of the
//! call (`docs/perf-notes.md`, v12).

use std::sync::Arc;

use cudarc::driver::CudaStream;

use crate::error::{Error, Result};
use crate::gemm::{GroupedGemm, Selection, TacticChoice};
use crate::heuristic::{prefer, ProblemShape};
use crate::moe::kernels::MoeKernels;
use crate::plan::StagePolicy;
use crate::tools::problem::{graph_us_per_call, RandomProblem};
use crate::tuned::{rows_bucket, TuneCache, TuneEntry, VariantTiming};
use crate::{Arch, Fp4Format};

/// Seeds of successive routing draws of one tuned problem are this far apart.
const DRAW_SEED_STRIDE: u64 = 1000;

/// Times every runnable (tactic, STAGES) of `gemm` on random problems of `tokens` tokens
/// routed uniformly to `top_k` of `groups` experts with `[n × k]` weights (graph timing over
/// weight copies rotated past L2, see the module docs), on `draws` routing draws (at least
/// one); a variant's time is its mean over the draws, so that a choice does not follow one
/// draw's luck (how many experts get two rows, say). Returns the fastest and the heuristic's
/// choice with their times (the heuristic's, not any tune cache's). `stream` must be one a
/// graph capture can record: its context's event tracking off
/// (`CudaContext::disable_event_tracking`), or this is [`crate::Error::Capture`].
#[allow(clippy::too_many_arguments)]
pub fn tune_problem(
    gemm: &GroupedGemm,
    stream: &Arc<CudaStream>,
    format: Fp4Format,
    (groups, top_k, tokens): (usize, usize, usize),
    (n, k): (usize, usize),
    reps: usize,
    draws: usize,
) -> Result<TuneEntry> {
    let ctx = stream.context().clone();
    let kernels = MoeKernels::load(&ctx, gemm.arch())?;
    let past_l2_of = Some(gemm.device().l2_bytes);
    let mut problems = (0..draws.max(1) as u64)
        .map(|d| {
            let seed = 11 + tokens as u64 + DRAW_SEED_STRIDE * d;
            RandomProblem::new(&kernels, stream, format, (groups, top_k, tokens), (n, k), seed, past_l2_of)
        })
        .collect::<Result<Vec<_>>>()?;
    let rows = problems[0].rows;
    let mut time = |choice: TacticChoice<'_>| -> Result<(String, usize, f64)> {
        let (mut ran, mut total_us) = (None, 0.0);
        for problem in &mut problems {
            total_us += graph_us_per_call(&ctx, stream, reps, |call| {
                ran = Some(problem.run(gemm, stream, choice, call)?);
                Ok(())
            })?;
        }
        let v = ran.expect("ran");
        Ok((v.tactic.name.to_string(), v.stages, total_us / problems.len() as f64))
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

/// The heuristic against one tuned problem's recorded timings ([`check_heuristic`]).
#[derive(Clone, Debug, PartialEq)]
pub struct HeuristicCheck<'a> {
    /// The tuned problem.
    pub entry: &'a TuneEntry,
    /// The heuristic's tactic and STAGES for it now.
    pub heuristic: (&'static str, usize),
    /// Their recorded time, if the tune timed them.
    pub heuristic_us: Option<f64>,
    /// The fastest recorded variant.
    pub best: &'a VariantTiming,
}

impl HeuristicCheck<'_> {
    /// The heuristic's time over the fastest (`None` where the tune did not time its choice).
    pub fn ratio(&self) -> Option<f64> {
        self.heuristic_us.map(|us| us / self.best.us)
    }
}

/// For every entry of `cache` that holds its variants' timings: the variant the heuristic
/// prefers now for the entry's problem (its rows bucket's row count, on the architecture, limit
/// and multiprocessor count the cache was made with, under [`StagePolicy::RunTime`]) against
/// the fastest recorded one. Needs no GPU: this is how a change to
/// [`crate::heuristic::PREFERENCES`] is checked against the tune it is fitted to.
pub fn check_heuristic(cache: &TuneCache) -> Result<Vec<HeuristicCheck<'_>>> {
    let (major, minor) = cache.compute_capability;
    let arch = Arch::for_compute_capability(major, minor).ok_or(Error::UnsupportedArch { major, minor })?;
    if cache.sm_count == 0 {
        return Err(Error::TuneCache {
            path: cache.made_for(),
            problem: "it does not record the multiprocessor count (made before caches did)".into(),
        });
    }
    let plans = StagePolicy::RunTime.plan_all(arch, cache.smem_limit);
    let mut checks = Vec::new();
    for entry in &cache.entries {
        let Some(best) = entry.timings.iter().min_by(|a, b| a.us.total_cmp(&b.us)) else { continue };
        let problem = ProblemShape { rows: entry.rows_bucket, groups: entry.groups, n: entry.n, k: entry.k };
        let Some(choice) = prefer(arch, &plans, &problem, cache.sm_count) else { continue };
        let heuristic = (choice.tactic.name, choice.stages.unwrap_or(0));
        let heuristic_us = entry.timings.iter().find(|t| (t.tactic.as_str(), t.stages) == heuristic).map(|t| t.us);
        checks.push(HeuristicCheck { entry, heuristic, heuristic_us, best });
    }
    Ok(checks)
}
