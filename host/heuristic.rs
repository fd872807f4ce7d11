//! Preference: which runnable tactic to use for a problem.
//!
//! [`crate::plan`] says what fits; this module ranks what fits. The model is deliberately
//! simple: the tile rows closest to the rows per expert (decode has few, prefill many), then
//! enough tiles to fill the multiprocessors, then the deeper pipeline.

use crate::plan::TacticPlan;

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

/// Estimated cost of running `plan` on `problem` with `sms` multiprocessors; lower is better.
fn estimated_cost(plan: &TacticPlan, problem: &ProblemShape, sms: usize) -> f64 {
    let tile = plan.tactic.tile;
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

/// The preferred runnable plan for `problem`, or `None` if nothing is runnable.
pub fn prefer<'a>(plans: &'a [TacticPlan], problem: &ProblemShape, sms: usize) -> Option<&'a TacticPlan> {
    plans.iter().filter(|p| p.runnable()).min_by(|a, b| {
        let (ca, cb) = (estimated_cost(a, problem, sms), estimated_cost(b, problem, sms));
        ca.total_cmp(&cb).then(b.stages.cmp(&a.stages))
    })
}
