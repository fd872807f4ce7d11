//! Preference: which runnable tactic, at which STAGES, to use for a problem.
//!
//! [`crate::plan`] says what fits; this module ranks what fits. The choice goes by the mean
//! rows per active group (decode has a few rows per expert, prefill many) through
//! [`PREFERENCES`], with K and the tile count as second features: up to 8 rows the swap-AB
//! tiles (8 rows by 64 or 128 weight rows), then the activation-major ones. The decode rows
//! were fitted to `stagefit bench` runs of the swap-AB and activation-major variants on the
//! four presets' shapes on an H100 (`results/h100-swap-ab-variants-s4.txt`); the larger rows
//! to `stagefit tune` runs of 168 MoE problems (`results/h100-tune-*-v4.json`). Its
//! STAGES is a preference capped by the reduction's length ([`K_STEPS_PER_STAGE`]) and by what
//! fits. Where the table's tactic does not fit the limit at all, a cost model ranks the tactics
//! that do: the fewest wasted rows and columns per wave of one block per multiprocessor, at the
//! shallowest STAGES. A tune cache, where given, overrides both (see `gemm::Selection`).

use crate::plan::TacticPlan;
use crate::{Tactic, TACTICS};

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
/// active group and a reduction of at least `min_k` prefer `tactic` at `stages`, or `wide`
/// where that tactic's tiles fill the multiprocessors [`WIDE_TILE_WAVES`] times over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preference {
    /// Upper bound (inclusive) of [`ProblemShape::rows_per_active_group`].
    pub max_rows_per_group: usize,
    /// Lower bound (inclusive) of K.
    pub min_k: usize,
    /// The tactic's name.
    pub tactic: &'static str,
    /// Its preferred STAGES (fewer where the limit allows fewer).
    pub stages: usize,
    /// A wider tactic and its STAGES, for problems with enough tiles of it.
    pub wide: Option<(&'static str, usize)>,
}

/// The wide tactic of a [`Preference`] row is chosen where its tiles number at least this
/// many per multiprocessor: fewer, wider tiles then still keep every multiprocessor streaming,
/// and each moves more bytes per fixed cost.
pub const WIDE_TILE_WAVES: usize = 8;

/// The preference table; the first row that matches a problem applies. Few rows per group
/// want swap-AB tiles (weights as the 16-row MMA operand, 8 rows of activations) with a
/// shallow ring, so that two or three blocks share each multiprocessor: for 1-2 rows the
/// 64-column tile unless the 128-column one has tiles to spare, with K-steps of 256 where K is
/// short (K-steps of 512 would leave half a stage empty); for 3-8 rows the 128-column tile,
/// except on short reductions, where its per-tile cost (the warps' partial sums) is not
/// amortized and the activation-major tile wins. Many rows want large activation-major tiles
/// (operand reuse); with the weights in strip order (`stagefit_kernels::packing`) a third
/// stage pays on long reductions.
pub const PREFERENCES: [Preference; 7] = [
    Preference {
        max_rows_per_group: 2,
        min_k: 2048,
        tactic: "swm8n64k512w1k4",
        stages: 3,
        wide: Some(("swm8n128k256w2k2", 2)),
    },
    Preference {
        max_rows_per_group: 2,
        min_k: 0,
        tactic: "swm8n64k256w1k2",
        stages: 3,
        wide: Some(("swm8n128k256w2k2", 2)),
    },
    Preference { max_rows_per_group: 8, min_k: 1024, tactic: "swm8n128k256w2k2", stages: 2, wide: None },
    Preference { max_rows_per_group: 8, min_k: 0, tactic: "m16n128k128w1x4", stages: 5, wide: None },
    Preference { max_rows_per_group: 128, min_k: 4096, tactic: "m32n128k128w1x4", stages: 3, wide: None },
    Preference { max_rows_per_group: 128, min_k: 0, tactic: "m32n128k128w1x4", stages: 2, wide: None },
    Preference { max_rows_per_group: usize::MAX, min_k: 0, tactic: "m128n256k64w2x4", stages: 2, wide: None },
];

/// The [`PREFERENCES`] row that applies to `problem`.
pub fn preference_row(problem: &ProblemShape) -> &'static Preference {
    let rows = problem.rows_per_active_group();
    PREFERENCES
        .iter()
        .find(|p| rows <= p.max_rows_per_group && problem.k >= p.min_k)
        .expect("the last row matches every problem")
}

/// The tactic and STAGES `row` names for `problem`: the wide one where its tiles fill `sms`
/// multiprocessors [`WIDE_TILE_WAVES`] times over.
pub fn preferred_variant(row: &Preference, problem: &ProblemShape, sms: usize) -> (&'static str, usize) {
    match row.wide {
        Some((wide, stages)) => {
            let tile = TACTICS.iter().find(|t| t.name == wide).map(|t| t.tile);
            let tiles = tile.map_or(0, |t| {
                let active = problem.groups.min(problem.rows).max(1);
                active * problem.rows_per_active_group().div_ceil(t.bm()) * problem.n.div_ceil(t.bn())
            });
            if tiles >= WIDE_TILE_WAVES * sms {
                (wide, stages)
            } else {
                (row.tactic, row.stages)
            }
        }
        None => (row.tactic, row.stages),
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

/// A ring deeper than this fraction of a tile's K-steps only delays its first MMA and costs
/// occupancy: preferred STAGES are capped at `max(2, k_steps / K_STEPS_PER_STAGE)` (fitted
/// with the table; short reductions such as K = 768 want 2).
pub const K_STEPS_PER_STAGE: usize = 4;

/// The preferred runnable tactic for `problem` and its STAGES, or `None` if nothing is
/// runnable: the variant of the problem's [`PREFERENCES`] row ([`preferred_variant`]) where
/// its tactic fits (at the row's STAGES, capped by the K-steps and by what fits), otherwise
/// the cheapest runnable tactic by the cost model at its shallowest STAGES.
pub fn prefer(plans: &[TacticPlan], problem: &ProblemShape, sms: usize) -> Option<TacticPlan> {
    let (tactic, stages) = preferred_variant(preference_row(problem), problem, sms);
    let preferred = plans.iter().find(|p| p.tactic.name == tactic).and_then(|p| {
        let deepest = p.stages?;
        let k_steps = problem.k.div_ceil(p.tactic.tile.bk());
        let wanted = stages.min((k_steps / K_STEPS_PER_STAGE).max(2));
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
