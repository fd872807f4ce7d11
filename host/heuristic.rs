//! Preference: which runnable tactic, at which STAGES, to use for a problem.
//!
//! [`crate::plan`] says what fits; this module ranks what fits. The choice goes by the mean
//! rows per active group (decode has a few rows per expert, prefill many) through
//! [`PREFERENCES`], a table fitted to `stagefit tune` runs on an H100 (every variant of 168
//! MoE problems in `results/h100-tune-*-v4.json`): on those timings its pick is within 10% of
//! the fastest variant on 163 of them and within 21% on all; timed afresh, on 158 of 168. Its
//! STAGES is a preference capped by the reduction's length ([`K_STEPS_PER_STAGE`]) and by what
//! fits. Where the table's tactic does not fit the limit at all, a cost model ranks the tactics
//! that do: the fewest wasted rows and columns per wave of one block per multiprocessor, at the
//! shallowest STAGES. A tune cache, where given, overrides both (see `gemm::Selection`).

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

/// One row of the preference table: problems with at most `max_rows_per_group` rows per
/// active group prefer `tactic` at `stages`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preference {
    /// Upper bound (inclusive) of [`ProblemShape::rows_per_active_group`].
    pub max_rows_per_group: usize,
    /// The tactic's name.
    pub tactic: &'static str,
    /// Its preferred STAGES (fewer where the limit allows fewer).
    pub stages: usize,
}

/// The preference table, by rising rows per group: few rows want small tiles with a deep
/// ring (more tiles to spread over the multiprocessors, more bytes in flight per tile), many
/// want large tiles (operand reuse) with a shallow one.
pub const PREFERENCES: [Preference; 4] = [
    Preference { max_rows_per_group: 2, tactic: "m16n64k128w1x4", stages: 6 },
    Preference { max_rows_per_group: 8, tactic: "m16n128k128w1x4", stages: 6 },
    Preference { max_rows_per_group: 128, tactic: "m32n128k128w1x4", stages: 2 },
    Preference { max_rows_per_group: usize::MAX, tactic: "m128n256k64w2x4", stages: 2 },
];

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

/// A ring deeper than this fraction of a tile's K-steps only delays its first MMA and costs
/// occupancy: preferred STAGES are capped at `max(2, k_steps / K_STEPS_PER_STAGE)` (fitted
/// with the table; short reductions such as K = 768 want 2).
pub const K_STEPS_PER_STAGE: usize = 4;

/// The preferred runnable tactic for `problem` and its STAGES, or `None` if nothing is
/// runnable: the [`PREFERENCES`] row of the problem where its tactic fits (at the row's
/// STAGES, capped by the K-steps and by what fits), otherwise the cheapest runnable tactic by
/// the cost model at its shallowest STAGES.
pub fn prefer(plans: &[TacticPlan], problem: &ProblemShape, sms: usize) -> Option<TacticPlan> {
    let rows = problem.rows_per_active_group();
    let row = PREFERENCES.iter().find(|p| rows <= p.max_rows_per_group)?;
    let preferred = plans.iter().find(|p| p.tactic.name == row.tactic).and_then(|p| {
        let deepest = p.stages?;
        let k_steps = problem.k.div_ceil(p.tactic.tile.bk());
        let wanted = row.stages.min((k_steps / K_STEPS_PER_STAGE).max(2));
        let stages = p.tactic.stages.iter().copied().filter(|&s| s <= deepest.min(wanted)).max()?;
        Some(TacticPlan { tactic: p.tactic, stages: Some(stages) })
    });
    preferred.or_else(|| {
        plans
            .iter()
            .filter(|p| p.runnable())
            .map(|p| TacticPlan { tactic: p.tactic, stages: Some(p.tactic.stages[0]) })
            .min_by(|a, b| estimated_cost(a.tactic, problem, sms).total_cmp(&estimated_cost(b.tactic, problem, sms)))
    })
}
