//! `stagefit selftest`: random grouped-GEMM cases on the GPU against the CPU reference.

use anyhow::bail;
use stagefit::rng::SplitMix64;
use stagefit::tools::selftest::{all_variant_cases, random_case, Case, Outcome, Runner};

use crate::cli_common::{progress, say};

/// Random cases (shapes, group sizes, formats, budgets, tactics) against the CPU reference.
#[derive(clap::Args)]
pub struct Args {
    /// Random cases to run.
    #[arg(long, default_value_t = 200, conflicts_with = "all_variants")]
    cases: u64,
    /// Seed of the random cases.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One case for every (tactic, STAGES, format) instead of random cases.
    #[arg(long)]
    all_variants: bool,
    /// The CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let ctx = stagefit::device::context(args.device)?;
    // Only the tactics whose family the device's PTX has.
    let arch = stagefit::device::DeviceInfo::query(&ctx)?.arch()?;
    // Random cases are drawn one at a time, so any count costs no memory up front.
    let (count, cases): (u64, Box<dyn Iterator<Item = Case>>) = if args.all_variants {
        let all = all_variant_cases(arch);
        (all.len() as u64, Box::new(all.into_iter()))
    } else {
        let mut rng = SplitMix64::new(args.seed);
        (args.cases, Box::new((0..args.cases).map(move |_| random_case(&mut rng, arch))))
    };
    let mut runner = Runner::new(ctx.new_stream()?);
    let (mut passed, mut refused, mut worst) = (0, 0, 0f64);
    let mut failures = Vec::new();
    let bar = progress(count, "selftest");
    for (i, case) in cases.enumerate() {
        match runner.run(&case, args.seed.wrapping_mul(1_000_003).wrapping_add(i as u64))? {
            Outcome::Pass(_, cmp) => {
                passed += 1;
                worst = worst.max(cmp.max_rel_err);
            }
            Outcome::Refused(_) => refused += 1,
            Outcome::Fail(why) => {
                tracing::error!("case {i} failed: {why}");
                failures.push(format!("FAIL case {i} {case:?}: {why}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for failure in &failures {
        say(failure)?;
    }
    say(format!(
        "selftest: {count} cases, {passed} passed, {refused} refused over budget, {} failed; worst max_rel_err {worst:.3e}",
        failures.len()
    ))?;
    if !failures.is_empty() {
        bail!("{} selftest cases failed", failures.len());
    }
    Ok(())
}
