//! Eligibility: which STAGES each tactic can run at under a shared-memory limit.
//!
//! This module only decides what *fits*; [`crate::heuristic`] decides what is *preferred*.

use serde::Serialize;

use crate::{SmemLayout, Tactic, TACTICS};

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

/// The plan of every tactic under `limit_bytes` (kernels have no static shared memory; the
/// launch path re-checks with the loaded kernel's real static size).
pub fn plan_all(limit_bytes: usize) -> Vec<TacticPlan> {
    TACTICS.iter().map(|tactic| TacticPlan { tactic, stages: deepest_fitting(tactic, limit_bytes, 0) }).collect()
}

/// What a compile-time "family maximum" policy would run: STAGES fixed at the deepest that
/// fits the family's largest part, which fails to launch wherever that footprint exceeds the
/// real limit. Returns whether the tactic would still launch under `limit_bytes`.
pub fn family_max_policy_fits(tactic: &Tactic, limit_bytes: usize) -> bool {
    SmemLayout::new(tactic.tile, tactic.max_stages_compiled()).total_bytes <= limit_bytes
}
