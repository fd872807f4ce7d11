//! Selection: which compiled variant a call runs, as a pure function of the plan (what fits the
//! limit in force), the problem and the preference (a tuned-cache entry, else the heuristic).

use serde::{Serialize, Serializer};

use crate::error::{Error, Result};
use crate::heuristic::{prefer, ProblemShape};
use crate::plan::{find_tactic, SmemLimit, StagePolicy, TacticPlan};
use crate::tuned::TuneCache;
use crate::{Arch, Fp4Format, SmemLayout, Tactic, TACTICS};

/// How to pick the kernel variant for a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TacticChoice<'a> {
    /// The tuned choice where the handle has a tune cache entry for the problem, else the
    /// heuristic's preferred tactic and STAGES (capped by what fits).
    Auto,
    /// This tactic, at the deepest STAGES that fits.
    Tactic(&'a str),
    /// Exactly this tactic and STAGES; refused with [`Error::SharedMemory`] if it does not fit.
    Variant {
        /// Tactic name.
        tactic: &'a str,
        /// Pipeline depth.
        stages: usize,
    },
}

/// One compiled kernel: a tactic at one STAGES, with its shared-memory footprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Variant {
    /// The tactic (its name when serialized).
    #[serde(serialize_with = "tactic_name")]
    pub tactic: &'static Tactic,
    /// Block tile rows, columns and K step.
    pub tile: (usize, usize, usize),
    /// Pipeline depth.
    pub stages: usize,
    /// Dynamic shared memory requested at launch (the layout's exact size).
    pub dynamic_smem_bytes: usize,
    /// Static shared memory the compiled kernel declares.
    pub static_smem_bytes: usize,
}

fn tactic_name<S: Serializer>(tactic: &&'static Tactic, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(tactic.name)
}

impl Variant {
    /// `tactic` at `stages`, whose compiled kernel declares `static_smem_bytes`.
    pub fn new(tactic: &'static Tactic, stages: usize, static_smem_bytes: usize) -> Variant {
        Variant {
            tactic,
            tile: (tactic.tile.bm(), tactic.tile.bn(), tactic.tile.bk()),
            stages,
            dynamic_smem_bytes: SmemLayout::new(tactic.tile, stages).total_bytes,
            static_smem_bytes,
        }
    }

    /// Static plus dynamic shared memory per block.
    pub fn smem_bytes(&self) -> usize {
        self.dynamic_smem_bytes + self.static_smem_bytes
    }
}

/// What selection reads: every tactic's plan on the architecture under the limit and policy in
/// force, the device's multiprocessor count (for the heuristic) and the tuned cache, if any.
pub struct Selection<'a> {
    /// The architecture whose PTX the device loads.
    pub arch: Arch,
    /// Every tactic's STAGES on `arch` under `limit` and `policy`.
    pub plans: &'a [TacticPlan],
    /// How STAGES are chosen.
    pub policy: StagePolicy,
    /// The shared-memory limit in force.
    pub limit: SmemLimit,
    /// The device's multiprocessor count.
    pub sm_count: usize,
    /// Tuned choices, preferred for [`TacticChoice::Auto`].
    pub tuned: Option<&'a TuneCache>,
}

impl Selection<'_> {
    /// The tactic and STAGES a call with `format` and `problem` runs under `choice`.
    ///
    /// Footprints here are the layouts' (the kernels declare no static shared memory:
    /// `tests/ptxas.rs`); the launch guard re-checks each variant with its loaded kernel's
    /// real static size. A forced [`TacticChoice::Variant`] is returned as asked and held to
    /// the limit by that guard.
    pub fn select(
        &self,
        format: Fp4Format,
        problem: &ProblemShape,
        choice: TacticChoice<'_>,
    ) -> Result<(&'static Tactic, usize)> {
        let limit = self.limit.bytes();
        match choice {
            TacticChoice::Variant { tactic, stages } => {
                let tactic = self.compiled_tactic(tactic)?;
                if !tactic.stages.contains(&stages) {
                    return Err(Error::UnknownVariant(format!("{} is not compiled at STAGES={stages}", tactic.name)));
                }
                Ok((tactic, stages))
            }
            TacticChoice::Tactic(name) => {
                let tactic = self.compiled_tactic(name)?;
                Ok((tactic, self.policy_stages(tactic)?))
            }
            TacticChoice::Auto => {
                let tuned = self.tuned.and_then(|cache| cache.lookup(format, problem));
                if let Some((name, stages)) = tuned {
                    let tactic = find_tactic(name)?;
                    // An entry that does not fit the limit in force falls back to the heuristic.
                    if self.policy.stages(self.arch, tactic, limit, 0).is_some_and(|deepest| stages <= deepest) {
                        return Ok((tactic, stages));
                    }
                }
                let Some(best) = prefer(self.arch, self.plans, problem, self.sm_count) else {
                    let needed = TACTICS
                        .iter()
                        .filter(|t| self.arch.runs(t.tile.family))
                        .map(|t| SmemLayout::new(t.tile, t.stages[0]).total_bytes)
                        .min()
                        .unwrap_or(0);
                    return Err(self.too_large("every tactic".into(), needed));
                };
                // The heuristic's STAGES preference applies to the run-time policy; the fixed
                // policy keeps its one STAGES.
                match (self.policy, best.stages) {
                    (StagePolicy::RunTime, Some(stages)) => Ok((best.tactic, stages)),
                    _ => Ok((best.tactic, self.policy_stages(best.tactic)?)),
                }
            }
        }
    }

    /// The tactic called `name`, refused where the architecture's PTX lacks its family.
    fn compiled_tactic(&self, name: &str) -> Result<&'static Tactic> {
        let tactic = find_tactic(name)?;
        if !self.arch.runs(tactic.tile.family) {
            return Err(Error::UnknownVariant(format!(
                "{} ({:?} family) is not compiled for {}",
                tactic.name,
                tactic.tile.family,
                self.arch.name()
            )));
        }
        Ok(tactic)
    }

    /// The STAGES the policy gives `tactic` under the limit, or the shared-memory refusal.
    fn policy_stages(&self, tactic: &'static Tactic) -> Result<usize> {
        self.policy
            .stages(self.arch, tactic, self.limit.bytes(), 0)
            .ok_or_else(|| self.too_large(tactic.name.into(), self.policy.least_bytes(tactic)))
    }

    /// The refusal of `what`, which needs `needed` bytes.
    pub fn too_large(&self, what: String, needed: usize) -> Error {
        Error::SharedMemory { what, needed, available: self.limit.bytes(), limit_source: self.limit.source() }
    }
}
