//! `stagefit plan`: the plan for an architecture and shared-memory limit, with no GPU.

use std::path::PathBuf;

use serde::Serialize;
use stagefit::plan::{family_max_policy_fits, plan_all, TacticPlan};
use stagefit::Arch;

use crate::cli_common::{say, table, JsonTarget};

/// The STAGES each tactic runs at on an architecture and shared-memory limit (no GPU needed).
#[derive(clap::Args)]
pub struct Args {
    /// The PTX target.
    #[arg(long, value_parser = parse_arch)]
    arch: Arch,
    /// Shared memory per block in bytes [default: the architecture's reference part].
    #[arg(long, value_name = "BYTES")]
    smem_limit: Option<usize>,
    /// Write the plan as JSON to FILE, or to stdout without a FILE.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    json: Option<PathBuf>,
}

fn parse_arch(name: &str) -> Result<Arch, String> {
    Arch::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
        format!("unknown arch (one of {})", names.join(", "))
    })
}

/// One tactic's row of the plan.
#[derive(Serialize)]
pub struct TacticRow {
    name: &'static str,
    family: String,
    /// Whether the architecture's PTX has the tactic's family at all.
    available: bool,
    bm: usize,
    bn: usize,
    bk: usize,
    max_stages_compiled: usize,
    stages: Option<usize>,
    smem_bytes: Option<usize>,
    fits: bool,
}

/// The plan for one architecture and limit.
#[derive(Serialize)]
pub struct PlanReport {
    arch: &'static str,
    budget_bytes: usize,
    tactics: Vec<TacticRow>,
}

/// The report of `plans` (every tactic's plan on `arch` under `budget` bytes).
pub fn report(arch: Arch, budget: usize, plans: &[TacticPlan]) -> PlanReport {
    let tactics = plans
        .iter()
        .map(|p| TacticRow {
            name: p.tactic.name,
            family: format!("{:?}", p.tactic.tile.family),
            available: arch.runs(p.tactic.tile.family),
            bm: p.tactic.tile.bm(),
            bn: p.tactic.tile.bn(),
            bk: p.tactic.tile.bk(),
            max_stages_compiled: p.tactic.max_stages_compiled(),
            stages: p.stages,
            smem_bytes: p.smem_bytes(),
            fits: p.runnable(),
        })
        .collect();
    PlanReport { arch: arch.name(), budget_bytes: budget, tactics }
}

/// The plan as a table, with what a fixed family-maximum policy would lose.
pub fn print(report: &PlanReport) -> anyhow::Result<()> {
    say(format!("arch {}, shared-memory limit {} bytes per block", report.arch, report.budget_bytes))?;
    let mut rows =
        table(&["tactic", "family", "BM", "BN", "BK", "compiled", "STAGES", "bytes", "runnable"], &[0, 1, 5, 8]);
    let dash = |v: Option<usize>| v.map_or("-".to_string(), |v| v.to_string());
    for t in &report.tactics {
        rows.add_row(vec![
            t.name.to_string(),
            t.family.clone(),
            t.bm.to_string(),
            t.bn.to_string(),
            t.bk.to_string(),
            format!("2..{}", t.max_stages_compiled),
            dash(t.stages),
            dash(t.smem_bytes),
            match (t.available, t.fits) {
                (false, _) => format!("not on {}", report.arch),
                (true, true) => "yes".to_string(),
                (true, false) => "no".to_string(),
            },
        ]);
    }
    say(rows)?;
    let runnable = report.tactics.iter().filter(|t| t.fits).count();
    let available = report.tactics.iter().filter(|t| t.available).count();
    let arch = Arch::from_name(report.arch).expect("the report names a shipped architecture");
    let family = stagefit::TACTICS.iter().filter(|t| family_max_policy_fits(arch, t, report.budget_bytes)).count();
    say(format!(
        "{runnable} of the {available} tactics compiled for {} runnable with STAGES chosen at run time; a fixed family-maximum policy (STAGES for 232448 bytes) would launch {family} and lose {}.",
        report.arch,
        runnable - family.min(runnable)
    ))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let limit = args.smem_limit.unwrap_or(args.arch.reference_smem_optin());
    let report = report(args.arch, limit, &plan_all(args.arch, limit));
    match JsonTarget::from_arg(&args.json) {
        Some(target) => {
            target.write("plan", &report)?;
            if target != JsonTarget::Stdout {
                print(&report)?;
            }
            Ok(())
        }
        None => print(&report),
    }
}
