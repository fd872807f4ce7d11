//! Preference: which runnable tactic, at which STAGES, to use for a problem.
//!
//! [`crate::plan`] says what fits; this module ranks what fits. The choice goes by the mean
//! rows per active group (decode has a few rows per expert, prefill many) through
//! [`PREFERENCES`], with K and the tile count as second features: up to 8 rows the swap-AB
//! tiles (8 rows by 32, 64 or 128 weight rows), then the activation-major ones. The rows up to
//! 48 rows per group were fitted to `stagefit tune` on an H100 on the v15 kernels (graph timing
//! over weight copies rotated past L2, every runnable variant, the four presets at 1-128 tokens
//! in both formats, MXFP4 averaged over two routing draws: within 10 % of the fastest variant
//! on all 64 problems, `stagefit tune --evaluate`, `docs/perf-notes.md` "The heuristic refitted
//! to v15"); the larger rows to the tune runs of `results/h100-tune-*-v4.json` and, for the
//! warpgroup tiles (sm_90a only: other targets skip the wgmma rows), to `stagefit bench` on an
//! H100 (`docs/perf-notes.md`, wgmma v1 and the 256-row tile). Where no matching row's tactic
//! fits the limit (at its row's fewest STAGES), a cost model ranks the tactics that do: the
//! fewest wasted rows and columns per wave of one block per multiprocessor, at the shallowest
//! STAGES. A tune cache, where given, overrides both (see `gemm::Selection`).

use crate::plan::TacticPlan;
use crate::{Arch, Tactic, TileShape, TACTICS};
use stagefit_kernels::tactics::MIN_STAGES;

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
/// active group and a reduction of at least `min_k` prefer `tactic` at `stages`, or one of the
/// `alternatives` where the problem has enough of its tiles.
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
    /// The fewest STAGES at which the row applies: where the limit leaves its variant fewer,
    /// the next row that matches the problem applies instead (a tile that only pays with a
    /// deep enough ring). [`MIN_STAGES`] for most rows: they apply wherever their variant fits.
    pub min_stages: usize,
    /// Other variants, in rising [`Alternative::min_tiles_per_sm`]: the last one whose tiles
    /// number at least that many per multiprocessor applies (fewer, wider tiles that still
    /// keep every multiprocessor streaming move more bytes per fixed cost).
    pub alternatives: &'static [Alternative],
}

impl Preference {
    /// A row with one tactic for every tile count and reduction length.
    pub const fn single(max_rows_per_group: usize, min_k: usize, tactic: &'static str, stages: usize) -> Preference {
        Preference { max_rows_per_group, min_k, tactic, stages, min_stages: MIN_STAGES, alternatives: &[] }
    }

    /// Whether the row is for `problem`'s rows per group and K, and `arch`'s PTX has its tactic.
    fn matches(&self, problem: &ProblemShape, arch: Arch) -> bool {
        problem.rows_per_active_group() <= self.max_rows_per_group
            && problem.k >= self.min_k
            && compiled_for(self.tactic, arch)
    }
}

/// Another variant of a [`Preference`] row, chosen where the problem has enough of its tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alternative {
    /// Tiles of `tactic` per multiprocessor from which it applies.
    pub min_tiles_per_sm: usize,
    /// The tactic's name.
    pub tactic: &'static str,
    /// Its preferred STAGES.
    pub stages: usize,
}

/// The preference table; the first row that matches a problem applies. Few rows per group
/// want swap-AB tiles (weights as the 16-row MMA operand, 8 rows of activations). For 1-2
/// rows the tile follows K and the tile count: the longest reductions (mixtral down, K =
/// 14336) take 64 columns at 4 STAGES, K of 4096 (mixtral gate_up) 128 columns at 3; on
/// other long reductions 32 columns at 3 STAGES while 64-column tiles would number under 2 per
/// multiprocessor (1 token of gpt-oss down, qwen3 gate_up), 64 columns at 2 STAGES (all of a
/// block's tiles in one wave of 3 blocks per multiprocessor: 1 token of gpt-oss gate_up), at 3
/// from 4 tiles per multiprocessor, and 128 columns at 3 from 16. Short reductions (qwen3
/// down, K = 768) and 3-4 rows take the 128-column tile at 2. From 5 rows the 16-row
/// activation-major tile wins (5 STAGES on the longest reductions), up to 16 rows (32 rows
/// would waste half of every MMA); many rows want large activation-major tiles (operand
/// reuse); with the weights in strip order (`stagefit_kernels::packing`) a third stage pays on
/// long reductions. On sm_90a the warpgroup MMA takes over from 17 rows per group: 64 rows per
/// tile at 8 STAGES up to 48, 128 up to 256, then 256 where it runs at 4 STAGES (at 2 it is
/// slower than the 128-row tile at 4: a 101376-byte limit keeps the 128-row tile); the rows
/// after those are the other targets'.
pub const PREFERENCES: [Preference; 15] = [
    Preference::single(2, 8192, "swm8n64k512w1k4", 4),
    Preference::single(2, 4096, "swm8n128k256w2k2", 3),
    Preference {
        max_rows_per_group: 2,
        min_k: 1024,
        tactic: "swm8n32k512w1k4",
        stages: 3,
        min_stages: MIN_STAGES,
        alternatives: &[
            Alternative { min_tiles_per_sm: 2, tactic: "swm8n64k512w1k4", stages: 2 },
            Alternative { min_tiles_per_sm: 4, tactic: "swm8n64k512w1k4", stages: 3 },
            Alternative { min_tiles_per_sm: 16, tactic: "swm8n128k256w2k2", stages: 3 },
        ],
    },
    Preference::single(2, 0, "swm8n128k256w2k2", 2),
    Preference::single(4, 1024, "swm8n128k256w2k2", 2),
    Preference::single(8, 8192, "m16n128k128w1x4", 5),
    Preference::single(8, 0, "m16n128k128w1x4", 2),
    Preference::single(16, 0, "m16n128k128w1x4", 2),
    Preference::single(48, 0, "wgm64n128k64", 8),
    Preference::single(256, 0, "wgm128n128k64", 4),
    Preference {
        max_rows_per_group: usize::MAX,
        min_k: 0,
        tactic: "wgm256n128k64",
        stages: 4,
        min_stages: 4,
        alternatives: &[],
    },
    Preference::single(usize::MAX, 0, "wgm128n128k64", 4),
    Preference::single(128, 4096, "m32n128k128w1x4", 3),
    Preference::single(128, 0, "m32n128k128w1x4", 2),
    Preference::single(usize::MAX, 0, "m128n256k64w2x4", 2),
];

/// The [`PREFERENCES`] row that applies to `problem` on `arch`: the first that matches it and
/// names a tactic whose family `arch`'s PTX has.
pub fn preference_row(problem: &ProblemShape, arch: Arch) -> &'static Preference {
    PREFERENCES.iter().find(|p| p.matches(problem, arch)).expect("the last row matches every problem")
}

/// Whether `tactic` names a tactic whose family `arch`'s PTX has.
pub fn compiled_for(tactic: &str, arch: Arch) -> bool {
    TACTICS.iter().any(|t| t.name == tactic && arch.runs(t.tile.family))
}

/// Tiles of `tile` on `problem`: active groups × row tiles per group × column tiles.
fn tile_count(tile: TileShape, problem: &ProblemShape) -> usize {
    let active = problem.groups.min(problem.rows).max(1);
    active * problem.rows_per_active_group().div_ceil(tile.bm()) * problem.n.div_ceil(tile.bn())
}

/// The tactic and STAGES `row` names for `problem` on `sms` multiprocessors: the last of its
/// alternatives with enough tiles, else its own.
pub fn preferred_variant(row: &Preference, problem: &ProblemShape, sms: usize) -> (&'static str, usize) {
    let tile_of = |name: &str| TACTICS.iter().find(|t| t.name == name).map(|t| t.tile);
    row.alternatives
        .iter()
        .rev()
        .find(|alt| tile_of(alt.tactic).is_some_and(|tile| tile_count(tile, problem) >= alt.min_tiles_per_sm * sms))
        .map_or((row.tactic, row.stages), |alt| (alt.tactic, alt.stages))
}

/// Estimated cost of running `tactic` on `problem`; lower is better.
fn estimated_cost(tactic: &Tactic, problem: &ProblemShape, sms: usize) -> f64 {
    let tile = tactic.tile;
    let (bm, bn) = (tile.bm(), tile.bn());
    let tiles = tile_count(tile, problem);
    let waves = tiles.div_ceil(sms.max(1)) as f64;
    // Work per tile, with wasted rows counted; smaller tiles pay more per useful element
    // (operand reloads), modelled as a per-tile fixed cost.
    let per_tile = (bm * bn) as f64 + 64.0 * (bm + bn) as f64;
    let k_steps = problem.k.div_ceil(tile.bk()) as f64;
    let k_waste = (k_steps * tile.bk() as f64) / problem.k.max(1) as f64;
    waves * per_tile * k_waste
}

/// The preferred runnable tactic for `problem` on `arch` and its STAGES, or `None` if nothing
/// is runnable: the variant ([`preferred_variant`]) of the first [`PREFERENCES`] row that
/// matches the problem and whose variant fits (at its STAGES, or the deepest that fits below
/// them, and at least the row's `min_stages`), otherwise the cheapest runnable tactic by the
/// cost model at its shallowest STAGES. `plans` are `arch`'s.
pub fn prefer(arch: Arch, plans: &[TacticPlan], problem: &ProblemShape, sms: usize) -> Option<TacticPlan> {
    let preferred = PREFERENCES.iter().filter(|row| row.matches(problem, arch)).find_map(|row| {
        let (tactic, stages) = preferred_variant(row, problem, sms);
        let plan = plans.iter().find(|p| p.tactic.name == tactic)?;
        let deepest = plan.stages?;
        let stages = plan.tactic.stages.iter().copied().filter(|&s| s <= deepest.min(stages)).max()?;
        (stages >= row.min_stages).then_some(TacticPlan { tactic: plan.tactic, stages: Some(stages) })
    });
    preferred.or_else(|| {
        plans
            .iter()
            .filter(|p| p.runnable())
            .map(|p| TacticPlan { tactic: p.tactic, stages: Some(p.tactic.stages[0]) })
            .min_by(|a, b| estimated_cost(a.tactic, problem, sms).total_cmp(&estimated_cost(b.tactic, problem, sms)))
    })
}
