//! Eligibility: which STAGES each tactic can run at on an architecture under a shared-memory
//! limit.
//!
//! This module only decides what *fits* (a tactic whose family the architecture's PTX lacks,
//! such as `Family::Wgmma` outside sm_90a, fits nowhere); `heuristic` decides what is
//! *preferred*.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::{Arch, SmemLayout, Tactic, TACTICS};

/// Where a shared-memory limit comes from, and how large it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SmemLimit {
    /// The device's per-block opt-in maximum (`MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`).
    pub device_optin: usize,
    /// A budget the caller imposed, if any.
    pub budget: Option<usize>,
}

impl SmemLimit {
    /// Bytes a block may use: the smaller of the device maximum and the budget.
    pub fn bytes(&self) -> usize {
        self.budget.map_or(self.device_optin, |b| b.min(self.device_optin))
    }

    /// Words for error messages: which of the two limits is binding.
    pub fn source(&self) -> String {
        match self.budget {
            Some(b) if b < self.device_optin => {
                format!("caller budget {b} < device opt-in maximum {}", self.device_optin)
            }
            _ => format!("device opt-in maximum {}", self.device_optin),
        }
    }
}

/// The STAGES chosen for one tactic under one limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TacticPlan {
    /// The tactic.
    pub tactic: &'static Tactic,
    /// The deepest compiled STAGES that fits, if any.
    pub stages: Option<usize>,
}

impl TacticPlan {
    /// Shared-memory bytes of the chosen variant.
    pub fn smem_bytes(&self) -> Option<usize> {
        self.stages.map(|s| SmemLayout::new(self.tactic.tile, s).total_bytes)
    }

    /// Whether some compiled variant fits.
    pub fn runnable(&self) -> bool {
        self.stages.is_some()
    }
}

/// The deepest compiled STAGES of `tactic` whose layout plus `static_bytes` of static shared
/// memory fits `limit_bytes`.
pub fn deepest_fitting(tactic: &Tactic, limit_bytes: usize, static_bytes: usize) -> Option<usize> {
    tactic
        .stages
        .iter()
        .rev()
        .copied()
        .find(|&s| static_bytes + SmemLayout::new(tactic.tile, s).total_bytes <= limit_bytes)
}

/// The run-time policy's plan of every tactic on `arch` under `limit_bytes`.
pub fn plan_all(arch: Arch, limit_bytes: usize) -> Vec<TacticPlan> {
    StagePolicy::RunTime.plan_all(arch, limit_bytes)
}

/// How STAGES are chosen for a tactic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StagePolicy {
    /// The deepest compiled STAGES that fits the limit in force (stagefit's policy).
    #[default]
    RunTime,
    /// STAGES fixed at the deepest that fits the family's largest part (232448 bytes), as a
    /// compile-time policy would; the tactic is unusable wherever that does not fit.
    FixedFamilyMax,
}

impl StagePolicy {
    /// The STAGES this policy gives `tactic` on `arch` under `limit_bytes`, with
    /// `static_bytes` of static shared memory; `None` when it cannot run.
    pub fn stages(self, arch: Arch, tactic: &Tactic, limit_bytes: usize, static_bytes: usize) -> Option<usize> {
        if !arch.runs(tactic.tile.family) {
            return None;
        }
        match self {
            StagePolicy::RunTime => deepest_fitting(tactic, limit_bytes, static_bytes),
            StagePolicy::FixedFamilyMax => {
                let s = tactic.max_stages_compiled();
                (static_bytes + SmemLayout::new(tactic.tile, s).total_bytes <= limit_bytes).then_some(s)
            }
        }
    }

    /// The footprint below which this policy cannot run `tactic` (without static memory).
    pub fn least_bytes(self, tactic: &Tactic) -> usize {
        let stages = match self {
            StagePolicy::RunTime => tactic.stages[0],
            StagePolicy::FixedFamilyMax => tactic.max_stages_compiled(),
        };
        SmemLayout::new(tactic.tile, stages).total_bytes
    }

    /// The plan of every tactic on `arch` under `limit_bytes` (kernels have no static shared
    /// memory; the launch path re-checks with the loaded kernel's real static size).
    pub fn plan_all(self, arch: Arch, limit_bytes: usize) -> Vec<TacticPlan> {
        TACTICS.iter().map(|tactic| TacticPlan { tactic, stages: self.stages(arch, tactic, limit_bytes, 0) }).collect()
    }
}

/// What a compile-time "family maximum" policy would run: STAGES fixed at the deepest that
/// fits the family's largest part, which fails to launch wherever that footprint exceeds the
/// real limit. Returns whether the tactic would still launch on `arch` under `limit_bytes`.
pub fn family_max_policy_fits(arch: Arch, tactic: &Tactic, limit_bytes: usize) -> bool {
    StagePolicy::FixedFamilyMax.stages(arch, tactic, limit_bytes, 0).is_some()
}

/// The tactic called `name`.
pub fn find_tactic(name: &str) -> Result<&'static Tactic> {
    TACTICS.iter().find(|t| t.name == name).ok_or_else(|| Error::UnknownVariant(format!("no tactic named {name}")))
}
