//! Preference: which runnable tactic, at which STAGES, to use for a problem.
//!
//! [`crate::plan`] says what fits; this module ranks what fits. The model is deliberately
//! simple: the tactic whose tiles waste the fewest rows and columns per wave of one block per
//! multiprocessor (decode has few rows per expert, prefill many), and, for that tactic, the
//! STAGES that let the most blocks share a multiprocessor (the deepest of those). Measured on an H100, a shallow ring with more
//! resident blocks beats the deepest ring that fits (`docs/perf-notes.md`); `stagefit tune`
//! measures instead of modelling.

use crate::plan::TacticPlan;
use crate::{SmemLayout, Tactic, TileShape};

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

/// The per-multiprocessor resources that decide how many blocks run at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmResources {
    /// Multiprocessors.
    pub sms: usize,
    /// Shared memory per multiprocessor.
    pub smem_per_sm: usize,
    /// Shared memory the system reserves per block.
    pub smem_reserved_per_block: usize,
    /// Resident threads per multiprocessor.
    pub threads_per_sm: usize,
    /// 32-bit registers per multiprocessor.
    pub registers_per_sm: usize,
}

/// Registers per thread a tile is expected to use: its accumulators and A fragments plus a
/// fixed part for addresses and dequantization (fitted to ptxas's reports on sm_90: 89 for
/// m16n64k128, 242 for m128n256k64).
pub fn register_estimate(tile: TileShape) -> usize {
    (70 + tile.mma_m * tile.mma_n * 4 + 8 * tile.mma_m).next_multiple_of(8).min(255)
}

/// Blocks of `tactic` at `stages` that fit one multiprocessor.
pub fn blocks_per_sm(tactic: &Tactic, stages: usize, sm: &SmResources) -> usize {
    let tile = tactic.tile;
    let smem = SmemLayout::new(tile, stages).total_bytes + sm.smem_reserved_per_block;
    let by_smem = sm.smem_per_sm / smem;
    let by_threads = sm.threads_per_sm / tile.threads();
    let by_registers = sm.registers_per_sm / (tile.threads() * register_estimate(tile));
    by_smem.min(by_threads).min(by_registers)
}

/// The STAGES (at most `deepest`) that let the most blocks share a multiprocessor; the deepest
/// of those.
pub fn preferred_stages(tactic: &Tactic, deepest: usize, sm: &SmResources) -> usize {
    let candidates = tactic.stages.iter().copied().filter(|&s| s <= deepest);
    let most = candidates.clone().map(|s| blocks_per_sm(tactic, s, sm)).max().unwrap_or(0);
    candidates.filter(|&s| blocks_per_sm(tactic, s, sm) == most).max().unwrap_or(deepest)
}

/// Estimated cost of running `tactic` on `problem`; lower is better.
fn estimated_cost(tactic: &Tactic, problem: &ProblemShape, sm: &SmResources) -> f64 {
    let tile = tactic.tile;
    let (bm, bn) = (tile.bm(), tile.bn());
    let rows = problem.rows_per_active_group();
    let active = problem.groups.min(problem.rows).max(1);
    let tiles = active * rows.div_ceil(bm) * problem.n.div_ceil(bn);
    let waves = tiles.div_ceil(sm.sms.max(1)) as f64;
    // Work per tile, with wasted rows counted; smaller tiles pay more per useful element
    // (operand reloads), modelled as a per-tile fixed cost.
    let per_tile = (bm * bn) as f64 + 64.0 * (bm + bn) as f64;
    let k_steps = problem.k.div_ceil(tile.bk()) as f64;
    let k_waste = (k_steps * tile.bk() as f64) / problem.k.max(1) as f64;
    waves * per_tile * k_waste
}

/// The preferred runnable tactic for `problem` with its preferred STAGES (never deeper than the
/// plan allows), or `None` if nothing is runnable.
pub fn prefer(plans: &[TacticPlan], problem: &ProblemShape, sm: &SmResources) -> Option<TacticPlan> {
    plans
        .iter()
        .filter_map(|p| {
            p.stages
                .map(|deepest| TacticPlan { tactic: p.tactic, stages: Some(preferred_stages(p.tactic, deepest, sm)) })
        })
        .min_by(|a, b| {
            let cost = |p: &TacticPlan| estimated_cost(p.tactic, problem, sm);
            cost(a).total_cmp(&cost(b)).then(b.stages.cmp(&a.stages))
        })
}
