//! Preference: which runnable tactic, at which STAGES, to use for a problem.
//!
//! [`crate::plan`] says what fits; this module ranks what fits. The model is deliberately
//! simple: the tactic whose tiles waste the fewest rows and columns per wave of one block per
//! multiprocessor (decode has few rows per expert, prefill many), at its shallowest STAGES.
//! Fitting is the planner's job (the deepest STAGES that fits is what a launch may use); as a
//! preference, the shallowest ring was the fastest in 44 of 48 problems tuned on an H100
//! (`docs/perf-notes.md`). `stagefit tune` measures instead of modelling.

use crate::plan::TacticPlan;
use crate::Tactic;

/// The sizes a grouped GEMM call is chosen by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProblemShape {
    /// Rows of A (all groups together).
    pub rows: usize,
    /// Groups (experts).
    pub groups: usize,
    /// Output columns.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
}

impl ProblemShape {
    /// Mean rows of a non-empty group, assuming rows are spread over as many groups as possible.
    pub fn rows_per_active_group(&self) -> usize {
        let active = self.groups.min(self.rows).max(1);
        self.rows.div_ceil(active)
    }
}

/// Estimated cost of running `tactic` on `problem`; lower is better.
fn estimated_cost(tactic: &Tactic, problem: &ProblemShape, sms: usize) -> f64 {
    let tile = tactic.tile;
    let (bm, bn) = (tile.bm(), tile.bn());
    let rows = problem.rows_per_active_group();
    let active = problem.groups.min(problem.rows).max(1);
    let tiles = active * rows.div_ceil(bm) * problem.n.div_ceil(bn);
    let waves = tiles.div_ceil(sms.max(1)) as f64;
    // Work per tile, with wasted rows counted; smaller tiles pay more per useful element
    // (operand reloads), modelled as a per-tile fixed cost.
    let per_tile = (bm * bn) as f64 + 64.0 * (bm + bn) as f64;
    let k_steps = problem.k.div_ceil(tile.bk()) as f64;
    let k_waste = (k_steps * tile.bk() as f64) / problem.k.max(1) as f64;
    waves * per_tile * k_waste
}

/// The preferred runnable tactic for `problem`, at its shallowest compiled STAGES, or `None`
/// if nothing is runnable.
pub fn prefer(plans: &[TacticPlan], problem: &ProblemShape, sms: usize) -> Option<TacticPlan> {
    plans
        .iter()
        .filter(|p| p.runnable())
        .map(|p| TacticPlan { tactic: p.tactic, stages: Some(p.tactic.stages[0]) })
        .min_by(|a, b| estimated_cost(a.tactic, problem, sms).total_cmp(&estimated_cost(b.tactic, problem, sms)))
}
