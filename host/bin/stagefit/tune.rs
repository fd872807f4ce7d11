//! `stagefit tune`: every runnable (tactic, STAGES) timed on MoE problems; the fastest kept
//! in a tune cache, merged into the file if it exists. `--check-heuristic` compares the
//! heuristic with a cache's recorded timings instead, without a GPU.

use std::path::PathBuf;

use anyhow::{bail, Context};
use stagefit::moe::Preset;
use stagefit::tools::tune::{check_heuristic, tune_problem};
use stagefit::tuned::TuneCache;
use stagefit::{Fp4Format, GroupedGemm};

use crate::cli_common::{check_writable, parse_format, parse_preset, progress, say, table};

/// Times every runnable variant on each problem and writes the fastest to a tune cache (merged
/// into CACHE if it exists: entries for the same problem are replaced; written atomically).
#[derive(clap::Args)]
pub struct Args {
    /// The tune cache to write (or merge into).
    #[arg(long, value_name = "CACHE", required_unless_present = "check_heuristic")]
    out: Option<PathBuf>,
    /// Tune nothing: for every problem of CACHE with recorded timings, show the variant the
    /// heuristic prefers now against the fastest recorded one (no GPU needed).
    #[arg(long, value_name = "CACHE", conflicts_with = "out")]
    check_heuristic: Option<PathBuf>,
    /// Model presets whose projections are tuned.
    #[arg(long, value_delimiter = ',', value_parser = parse_preset,
          default_value = "gpt-oss-20b,gpt-oss-120b,qwen3-30b-a3b,mixtral-8x7b")]
    preset: Vec<Preset>,
    /// Token counts.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128,512,2048")]
    tokens: Vec<usize>,
    /// Weight formats.
    #[arg(long, value_delimiter = ',', value_parser = parse_format, default_value = "mxfp4")]
    format: Vec<Fp4Format>,
    /// Shared memory per block in bytes [default: the device's opt-in maximum].
    #[arg(long, value_name = "BYTES")]
    budget: Option<usize>,
    /// Timed runs per variant.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Routing draws per problem: each variant is timed on each and ranked by its mean.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=8))]
    draws: u64,
    /// The CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let out = match (&args.out, &args.check_heuristic) {
        (_, Some(cache)) => return show_heuristic_check(cache),
        (Some(out), None) => out.clone(),
        (None, None) => bail!("--out or --check-heuristic is required"),
    };
    // Every argument is checked, and the output's folder tried, before the first GPU call.
    check_writable(&out)?;
    let existing = if out.exists() { Some(TuneCache::load(&out)?) } else { None };
    let ctx = stagefit::device::context(args.device)?;
    // One stream, captured into graphs: cudarc's cross-stream event waits are not needed and
    // would break the capture.
    // SAFETY: every buffer the tune makes is used on `stream` only.
    unsafe { ctx.disable_event_tracking() };
    let stream = ctx.new_stream()?;
    let gemm = GroupedGemm::new(&ctx, args.budget)?;
    let mut cache = TuneCache::empty(gemm.device(), gemm.limit().bytes());
    let problems = args.preset.len() * args.format.len() * 2 * args.tokens.len();
    let bar = progress(problems as u64, "tune");
    let mut rows =
        table(&["preset", "proj", "tokens", "format", "heuristic", "us", "tuned", "us", "ratio"], &[0, 1, 3, 4, 6]);
    let (mut within, mut total) = (0, 0);
    for preset in &args.preset {
        let c = &preset.config;
        for &format in &args.format {
            for (proj, n, k) in [("gate_up", 2 * c.intermediate, c.hidden), ("down", c.hidden, c.intermediate)] {
                for &tokens in &args.tokens {
                    let e = tune_problem(
                        &gemm,
                        &stream,
                        format,
                        (c.experts, c.top_k, tokens),
                        (n, k),
                        args.reps,
                        args.draws as usize,
                    )
                    .with_context(|| format!("tuning {} {proj} at {tokens} tokens", preset.name))?;
                    let ratio = e.heuristic_us / e.time_us;
                    total += 1;
                    within += usize::from(ratio <= 1.10);
                    tracing::info!(preset = preset.name, proj, tokens, tactic = %e.tactic, stages = e.stages, "tuned");
                    rows.add_row(vec![
                        preset.name.to_string(),
                        proj.to_string(),
                        tokens.to_string(),
                        format.name().to_string(),
                        e.heuristic.clone(),
                        format!("{:.1}", e.heuristic_us),
                        format!("{} S={}", e.tactic, e.stages),
                        format!("{:.1}", e.time_us),
                        format!("{ratio:.2}"),
                    ]);
                    cache.entries.push(e);
                    bar.inc(1);
                }
            }
        }
    }
    bar.finish_and_clear();
    say(rows)?;
    let merged = match existing {
        Some(mut old) => {
            let before = old.entries.len();
            if let Err(problem) = old.merge(cache) {
                bail!("{} cannot take these results: it was {problem}", out.display());
            }
            say(format!(
                "merged into {}: {} entries ({} new)",
                out.display(),
                old.entries.len(),
                old.entries.len() - before
            ))?;
            old
        }
        None => cache,
    };
    merged.save(&out)?;
    say(format!(
        "heuristic within 10% of the tuned best on {within} of {total} problems; cache written to {}",
        out.display()
    ))
}

/// Prints the heuristic's choice against the fastest recorded variant for every problem of
/// `path` with recorded timings.
fn show_heuristic_check(path: &std::path::Path) -> anyhow::Result<()> {
    let cache = TuneCache::load(path)?;
    let checks = check_heuristic(&cache)?;
    let mut rows =
        table(&["format", "experts", "n", "k", "rows", "heuristic", "us", "fastest", "us", "ratio"], &[0, 5, 7]);
    let mut within = 0;
    for c in &checks {
        let e = c.entry;
        let ratio = c.ratio();
        within += usize::from(ratio.is_some_and(|r| r <= 1.10));
        let shown = |v: Option<f64>, digits: usize| v.map_or("not timed".to_string(), |v| format!("{v:.digits$}"));
        rows.add_row(vec![
            e.format.clone(),
            e.groups.to_string(),
            e.n.to_string(),
            e.k.to_string(),
            e.rows_bucket.to_string(),
            format!("{} S={}", c.heuristic.0, c.heuristic.1),
            shown(c.heuristic_us, 1),
            format!("{} S={}", c.best.tactic, c.best.stages),
            format!("{:.1}", c.best.us),
            shown(ratio, 3),
        ]);
    }
    say(rows)?;
    say(format!(
        "heuristic within 10% of the fastest recorded variant on {within} of {} problems with timings ({})",
        checks.len(),
        cache.made_for()
    ))
}
