//! `stagefit bench`: the grouped GEMM timed on MoE shapes against the device's copy bandwidth,
//! its bf16 rate and cuBLAS (see `stagefit::tools::bench`).

use std::path::PathBuf;

use stagefit::moe::Preset;
use stagefit::tools::baseline;
use stagefit::tools::bench::{run as run_bench, BenchOptions, BenchRow, Routing, Tuning};
use stagefit::Fp4Format;

use crate::cli_common::{parse_format, parse_preset, progress, say, table, JsonTarget};

/// Times the grouped GEMM on MoE problems of model presets, with the same run's ceilings.
#[derive(clap::Args)]
pub struct Args {
    /// Model presets.
    #[arg(long, value_delimiter = ',', value_parser = parse_preset,
          default_value = "gpt-oss-20b,gpt-oss-120b,qwen3-30b-a3b,mixtral-8x7b")]
    preset: Vec<Preset>,
    /// Token counts.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128,512,2048,8192")]
    tokens: Vec<usize>,
    /// Routings: uniform, zipf.
    #[arg(long, value_delimiter = ',', value_parser = parse_routing, default_value = "uniform,zipf")]
    routing: Vec<Routing>,
    /// Weight formats.
    #[arg(long, value_delimiter = ',', value_parser = parse_format, default_value = "nvfp4,mxfp4")]
    format: Vec<Fp4Format>,
    /// Shared-memory budgets: `device` (its opt-in maximum) or a byte count.
    #[arg(long, value_delimiter = ',', value_parser = parse_budget, default_value = "device,101376")]
    budget: Vec<Budget>,
    /// Timed runs per measurement.
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// Variants: `auto`, a tactic name (at its deepest fitting STAGES) or NAME:STAGES.
    #[arg(long, value_delimiter = ',', default_value = "auto")]
    tactic: Vec<String>,
    /// `single`: event-timed single calls; `graph`: also back-to-back calls in a CUDA graph.
    #[arg(long, value_enum, default_value_t = Timing::Single)]
    timing: Timing,
    /// What `auto` prefers to the heuristic: `shipped` (the crate's cache for this device),
    /// `heuristic` (none), or a tune cache FILE.
    #[arg(long, value_name = "shipped|heuristic|FILE", default_value = "shipped")]
    tuning: String,
    /// Leave out the cuBLAS bf16 baselines (per-expert GEMMs in a graph, and one grouped call).
    #[arg(long)]
    no_cublas: bool,
    /// The CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Write the report as JSON to FILE, or to stdout (instead of the table) without a FILE.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    json: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Timing {
    Single,
    Graph,
}

/// A budget: `None` is the device's own limit.
#[derive(Clone, Copy)]
struct Budget(Option<usize>);

fn parse_budget(text: &str) -> Result<Budget, String> {
    match text {
        "device" => Ok(Budget(None)),
        bytes => bytes.parse().map(|b| Budget(Some(b))).map_err(|_| "expected `device` or a byte count".into()),
    }
}

fn parse_routing(text: &str) -> Result<Routing, String> {
    match text {
        "uniform" => Ok(Routing::Uniform),
        "zipf" => Ok(Routing::Zipf),
        _ => Err("unknown routing (uniform or zipf)".into()),
    }
}

fn print_row(rows: &mut comfy_table::Table, r: &BenchRow) {
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    rows.add_row(vec![
        r.preset.to_string(),
        format!("{:?}", r.projection),
        r.tokens.to_string(),
        format!("{:?}", r.routing),
        r.format.to_string(),
        r.budget_bytes.to_string(),
        r.active_experts.to_string(),
        r.tactic.to_string(),
        r.stages.to_string(),
        format!("{:.1}", r.time_us),
        opt(r.graph_us, 1),
        format!("{:.1}", r.tflop_s),
        format!("{:.0}", r.gb_s),
        format!("{:.1}", r.pct_copy_bw),
        opt(r.pct_bf16_rate, 1),
        format!("{:.1}", r.pct_roofline),
        opt(r.cublas_us, 1),
        opt(r.speedup_vs_cublas, 2),
        opt(r.cublas_grouped_us, 1),
        opt(r.speedup_vs_cublas_grouped, 2),
    ]);
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let json = JsonTarget::from_arg(&args.json);
    if let Some(target) = &json {
        target.check_writable()?;
    }
    let tuning = Tuning::parse(&args.tuning)?;
    let cublas = !args.no_cublas && baseline::available();
    if !args.no_cublas && !cublas {
        tracing::warn!(
            "{}; running without the cuBLAS baseline",
            if cfg!(feature = "cublas") {
                "libcublas not found (set LD_LIBRARY_PATH)"
            } else {
                "built without the `cublas` feature"
            }
        );
    }
    let cases = args.preset.len()
        * args.format.len()
        * 2
        * args.tokens.len()
        * args.routing.len()
        * args.budget.len()
        * args.tactic.len();
    let options = BenchOptions {
        presets: args.preset,
        tokens: args.tokens,
        routings: args.routing,
        formats: args.format,
        budgets: args.budget.iter().map(|b| b.0).collect(),
        reps: args.reps.max(1),
        cublas,
        choices: args.tactic,
        graph: matches!(args.timing, Timing::Graph),
        tuning,
        device: args.device,
    };
    let mut rows = table(
        &[
            "preset",
            "proj",
            "tok",
            "routing",
            "fmt",
            "budget",
            "E",
            "tactic",
            "S",
            "time_us",
            "graph_us",
            "TFLOP/s",
            "GB/s",
            "%bw",
            "%mma",
            "%roof",
            "cublas_us",
            "vs_cb",
            "cb_grp_us",
            "vs_cbg",
        ],
        &[0, 1, 3, 4, 7],
    );
    let bar = progress(cases as u64, "bench");
    let report = run_bench(&options, |r| {
        tracing::info!(preset = r.preset, projection = ?r.projection, tokens = r.tokens, tactic = r.tactic, stages = r.stages, time_us = r.time_us, "measured");
        print_row(&mut rows, r);
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    if json != Some(JsonTarget::Stdout) {
        say(rows)?;
        say(format!(
            "device {}: copy {:.0} GB/s, cuBLAS bf16 {} TFLOP/s (both measured in this run)",
            report.device,
            report.ceilings.copy_gb_s,
            report.ceilings.bf16_tflop_s.map_or("-".into(), |v| format!("{v:.0}"))
        ))?;
    }
    if let Some(target) = &json {
        target.write("bench", &report)?;
    }
    Ok(())
}
