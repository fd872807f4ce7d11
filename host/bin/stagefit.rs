//! The `stagefit` command.
//!
//! - `stagefit info [--budget BYTES] [--json]`: the real device, its limits, and the plan;
//! - `stagefit plan --arch ARCH [--smem-limit BYTES] [--json]`: the plan for an architecture
//!   and shared-memory limit, with no GPU needed;
//! - `stagefit bench [...]`: the grouped GEMM timed on MoE shapes against the device's copy
//!   bandwidth, its bf16 rate and cuBLAS (see `stagefit::tools::bench`);
//! - `stagefit tune`, `stagefit selftest`, `stagefit overhead`: autotuning, random cases
//!   against the CPU reference, and the host cost of a call (see the modules of those names).

use std::process::ExitCode;

use serde::Serialize;
use stagefit::device::{self, DeviceInfo};
use stagefit::plan::{family_max_policy_fits, plan_all, TacticPlan};
use stagefit::{Arch, GroupedGemm};

const USAGE: &str = "usage:
  stagefit info [--budget BYTES] [--json]
  stagefit plan --arch {sm_80|sm_90|sm_120a|sm_121a} [--smem-limit BYTES] [--json]
  stagefit bench [--preset gpt-oss-20b,gpt-oss-120b,qwen3-30b-a3b,mixtral-8x7b] [--tokens 1,8,32,128,512,2048,8192]
                 [--routing uniform,zipf] [--format nvfp4,mxfp4] [--budget device,101376] [--reps 20]
                 [--tactic auto,NAME,NAME:STAGES] [--timing single|graph] [--tuned CACHE] [--no-cublas] [--json FILE]
  stagefit tune --out CACHE [--preset ...] [--tokens 1,8,32,128,512,2048] [--format mxfp4] [--budget device|BYTES] [--reps 5]
  stagefit selftest [--cases N] [--seed S] [--all-variants]
  stagefit overhead [--calls N] [--json]";

/// One tactic's row of the plan, as printed by `--json`.
#[derive(Serialize)]
struct TacticRow {
    name: &'static str,
    bm: usize,
    bn: usize,
    bk: usize,
    max_stages_compiled: usize,
    stages: Option<usize>,
    smem_bytes: Option<usize>,
    fits: bool,
}

/// The plan for one architecture and limit, as printed by `--json`.
#[derive(Serialize)]
struct PlanReport {
    arch: &'static str,
    budget_bytes: usize,
    tactics: Vec<TacticRow>,
}

fn report(arch: Arch, budget: usize, plans: &[TacticPlan]) -> PlanReport {
    let tactics = plans
        .iter()
        .map(|p| TacticRow {
            name: p.tactic.name,
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

fn print_table(report: &PlanReport) {
    println!("arch {}, shared-memory limit {} bytes per block", report.arch, report.budget_bytes);
    println!(
        "{:<18} {:>4} {:>4} {:>4} {:>9} {:>7} {:>8}  runnable",
        "tactic", "BM", "BN", "BK", "compiled", "STAGES", "bytes"
    );
    for t in &report.tactics {
        let opt = |v: Option<usize>| v.map_or("-".to_string(), |v| v.to_string());
        println!(
            "{:<18} {:>4} {:>4} {:>4} {:>9} {:>7} {:>8}  {}",
            t.name,
            t.bm,
            t.bn,
            t.bk,
            format!("2..{}", t.max_stages_compiled),
            opt(t.stages),
            opt(t.smem_bytes),
            if t.fits { "yes" } else { "no" }
        );
    }
    let runnable = report.tactics.iter().filter(|t| t.fits).count();
    let family = stagefit::TACTICS.iter().filter(|t| family_max_policy_fits(t, report.budget_bytes)).count();
    println!(
        "{runnable} of {} tactics runnable with STAGES chosen at run time; a fixed family-maximum policy (STAGES for 232448 bytes) would launch {family} and lose {}.",
        report.tactics.len(),
        runnable - family.min(runnable)
    );
}

struct Options {
    command: String,
    arch: Option<String>,
    bytes: Option<usize>,
    json: bool,
    /// `bench` options, by name, as given.
    lists: Vec<(String, String)>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut it = args.iter();
    let command = it.next().ok_or("missing command")?.clone();
    let mut options = Options { command, arch: None, bytes: None, json: false, lists: Vec::new() };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--json" if options.command == "bench" => options.lists.push(("--json".into(), value("--json")?)),
            "--json" => options.json = true,
            "--preset" | "--tokens" | "--routing" | "--format" | "--reps" | "--tactic" | "--timing" | "--tuned"
            | "--out" | "--cases" | "--seed" | "--calls" => {
                options.lists.push((arg.clone(), value(arg)?));
            }
            "--budget" if options.command == "bench" || options.command == "tune" => {
                options.lists.push((arg.clone(), value(arg)?))
            }
            "--no-cublas" | "--all-variants" => options.lists.push((arg.clone(), String::new())),
            "--arch" => options.arch = Some(value("--arch")?),
            "--smem-limit" | "--budget" => {
                let v = value(arg)?;
                options.bytes = Some(v.parse().map_err(|_| format!("{arg} takes a byte count, not {v:?}"))?);
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(options)
}

fn plan_command(options: &Options) -> Result<(), String> {
    let name = options.arch.as_deref().ok_or("plan needs --arch")?;
    let arch = Arch::from_name(name).ok_or(format!("unknown arch {name:?}"))?;
    let limit = options.bytes.unwrap_or(arch.reference_smem_optin());
    let report = report(arch, limit, &plan_all(limit));
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print_table(&report);
    }
    Ok(())
}

#[derive(Serialize)]
struct InfoReport {
    device: DeviceInfo,
    plan: PlanReport,
}

fn info_command(options: &Options) -> Result<(), String> {
    let ctx = device::context(0)
        .map_err(|e| format!("{e}. `stagefit plan --arch ARCH --smem-limit BYTES` plans without a GPU."))?;
    let gemm = GroupedGemm::new(&ctx, options.bytes).map_err(|e| e.to_string())?;
    let info = gemm.device().clone();
    let limit = gemm.limit();
    let plan = report(gemm.arch(), limit.bytes(), gemm.plan());
    if options.json {
        let out = InfoReport { device: info, plan };
        println!("{}", serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!(
        "device {}: {} (compute capability {}.{}), driver {}",
        info.ordinal, info.name, info.compute_capability.0, info.compute_capability.1, info.driver_version
    );
    println!(
        "shared memory: {} bytes opt-in per block, {} reserved per block, {} per multiprocessor; {} multiprocessors",
        info.smem_optin_per_block, info.smem_reserved_per_block, info.smem_per_sm, info.sm_count
    );
    println!("PTX: {}; limit in force: {} bytes ({})", gemm.arch().name(), limit.bytes(), limit.source());
    println!();
    print_table(&plan);
    Ok(())
}

fn bench_command(options: &Options) -> Result<(), String> {
    use stagefit::moe::presets;
    use stagefit::tools::baseline;
    use stagefit::tools::bench::{run, BenchOptions, Routing};
    use stagefit::Fp4Format;
    let get = |name: &str| options.lists.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let list = |name: &str, default: &str| -> Vec<String> {
        get(name).unwrap_or(default).split(',').map(str::to_string).collect()
    };
    let numbers = |name: &str, default: &str| -> Result<Vec<usize>, String> {
        list(name, default).iter().map(|v| v.parse().map_err(|_| format!("{name} takes numbers, not {v:?}"))).collect()
    };
    let all = presets();
    let bench = BenchOptions {
        presets: list("--preset", "gpt-oss-20b,gpt-oss-120b,qwen3-30b-a3b,mixtral-8x7b")
            .iter()
            .map(|n| all.iter().find(|p| p.name == n).cloned().ok_or(format!("unknown preset {n:?}")))
            .collect::<Result<_, _>>()?,
        tokens: numbers("--tokens", "1,8,32,128,512,2048,8192")?,
        routings: list("--routing", "uniform,zipf")
            .iter()
            .map(|r| match r.as_str() {
                "uniform" => Ok(Routing::Uniform),
                "zipf" => Ok(Routing::Zipf),
                other => Err(format!("unknown routing {other:?}")),
            })
            .collect::<Result<_, _>>()?,
        formats: list("--format", "nvfp4,mxfp4")
            .iter()
            .map(|f| Fp4Format::ALL.into_iter().find(|x| x.name() == f).ok_or(format!("unknown format {f:?}")))
            .collect::<Result<_, _>>()?,
        budgets: list("--budget", "device,101376")
            .iter()
            .map(|b| {
                if b == "device" {
                    Ok(None)
                } else {
                    b.parse().map(Some).map_err(|_| format!("--budget takes device or a byte count, not {b:?}"))
                }
            })
            .collect::<Result<_, _>>()?,
        reps: numbers("--reps", "20")?[0],
        cublas: get("--no-cublas").is_none() && baseline::available(),
        choices: list("--tactic", "auto"),
        graph: match get("--timing").unwrap_or("single") {
            "single" => false,
            "graph" => true,
            other => return Err(format!("--timing takes single or graph, not {other:?}")),
        },
        tuned: get("--tuned")
            .map(|p| stagefit::tuned::TuneCache::load(p.as_ref()))
            .transpose()
            .map_err(|e| e.to_string())?,
    };
    if let Some(path) = get("--json") {
        check_writable(path)?;
    }
    if get("--no-cublas").is_none() && !bench.cublas {
        eprintln!(
            "stagefit bench: {}; running without the cuBLAS baseline",
            if cfg!(feature = "cublas") {
                "libcublas not found (set LD_LIBRARY_PATH)"
            } else {
                "built without the `cublas` feature"
            }
        );
    }
    println!(
        "{:<13} {:<7} {:>5} {:<7} {:<5} {:>6} {:>3} {:<17} {:>2} {:>9} {:>8} {:>7} {:>7} {:>5} {:>5} {:>5} {:>9} {:>6}",
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
        "vs_cb"
    );
    let report = run(&bench, |r| {
        let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
        println!(
            "{:<13} {:<7} {:>5} {:<7} {:<5} {:>6} {:>3} {:<17} {:>2} {:>9.1} {:>8} {:>7.1} {:>7.0} {:>5.1} {:>5} {:>5.1} {:>9} {:>6}",
            r.preset,
            format!("{:?}", r.projection),
            r.tokens,
            format!("{:?}", r.routing),
            r.format,
            r.budget_bytes,
            r.active_experts,
            r.tactic,
            r.stages,
            r.time_us,
            opt(r.graph_us, 1),
            r.tflop_s,
            r.gb_s,
            r.pct_copy_bw,
            opt(r.pct_bf16_rate, 1),
            r.pct_roofline,
            opt(r.cublas_us, 1),
            opt(r.speedup_vs_cublas, 2)
        );
    })
    .map_err(|e| e.to_string())?;
    println!(
        "device {}: copy {:.0} GB/s, cuBLAS bf16 {} TFLOP/s (both measured in this run)",
        report.device,
        report.ceilings.copy_gb_s,
        report.ceilings.bf16_tflop_s.map_or("-".into(), |v| format!("{v:.0}"))
    );
    if let Some(path) = get("--json") {
        std::fs::write(path, serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?)
            .map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

fn tune_command(options: &Options) -> Result<(), String> {
    use stagefit::moe::presets;
    use stagefit::Fp4Format;
    use stagefit::{tools::tune::tune_problem, tuned::TuneCache};
    let get = |name: &str| options.lists.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let list = |name: &str, default: &str| -> Vec<String> {
        get(name).unwrap_or(default).split(',').map(str::to_string).collect()
    };
    let out = get("--out").ok_or("tune needs --out CACHE")?;
    let budget = match get("--budget").unwrap_or("device") {
        "device" => None,
        b => Some(b.parse::<usize>().map_err(|_| format!("--budget takes device or a byte count, not {b:?}"))?),
    };
    let reps: usize = get("--reps").unwrap_or("5").parse().map_err(|_| "--reps takes a number")?;
    // Every argument is checked, and the output opened, before the first GPU call.
    let all = presets();
    let chosen = list("--preset", "gpt-oss-20b,gpt-oss-120b,qwen3-30b-a3b,mixtral-8x7b")
        .iter()
        .map(|name| all.iter().find(|p| p.name == name).ok_or(format!("unknown preset {name:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let formats = list("--format", "mxfp4")
        .iter()
        .map(|f| Fp4Format::ALL.into_iter().find(|x| x.name() == f).ok_or(format!("unknown format {f:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let token_counts = list("--tokens", "1,8,32,128,512,2048")
        .iter()
        .map(|t| t.parse::<usize>().map_err(|_| format!("--tokens takes numbers, not {t:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    check_writable(out)?;
    let ctx = stagefit::device::context(0).map_err(|e| e.to_string())?;
    let stream = ctx.new_stream().map_err(|e| e.to_string())?;
    let gemm = GroupedGemm::new(&ctx, budget).map_err(|e| e.to_string())?;
    let mut cache = TuneCache::empty(gemm.device(), gemm.limit().bytes());
    let (mut within, mut total) = (0, 0);
    println!(
        "{:<13} {:<7} {:>5} {:<5} {:<22} {:>9} {:<22} {:>9} {:>6}",
        "preset", "proj", "tok", "fmt", "heuristic", "us", "tuned", "us", "ratio"
    );
    for preset in chosen {
        let (name, c) = (preset.name, &preset.config);
        for &format in &formats {
            for (proj, n, k) in [("gate_up", 2 * c.intermediate, c.hidden), ("down", c.hidden, c.intermediate)] {
                for &tokens in &token_counts {
                    let e = tune_problem(&gemm, &stream, format, (c.experts, c.top_k, tokens), (n, k), reps)
                        .map_err(|e| e.to_string())?;
                    let ratio = e.heuristic_us / e.time_us;
                    total += 1;
                    within += (ratio <= 1.10) as usize;
                    println!(
                        "{:<13} {:<7} {:>5} {:<5} {:<22} {:>9.1} {:<22} {:>9.1} {:>6.2}",
                        name,
                        proj,
                        tokens,
                        format.name(),
                        e.heuristic,
                        e.heuristic_us,
                        format!("{} S={}", e.tactic, e.stages),
                        e.time_us,
                        ratio
                    );
                    cache.entries.push(e);
                }
            }
        }
    }
    println!("heuristic within 10% of the tuned best on {within} of {total} problems; cache written to {out}");
    cache.save(out.as_ref()).map_err(|e| e.to_string())
}

/// Refuses an output path that cannot be written, before any GPU work; a file this check
/// creates is removed again.
fn check_writable(path: &str) -> Result<(), String> {
    let existed = std::path::Path::new(path).exists();
    std::fs::OpenOptions::new().append(true).create(true).open(path).map_err(|e| format!("{path}: {e}"))?;
    if !existed {
        std::fs::remove_file(path).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

fn overhead_command(options: &Options) -> Result<(), String> {
    let get = |name: &str| options.lists.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let calls = get("--calls").unwrap_or("2000").parse().map_err(|_| "--calls takes a number".to_string())?;
    let r = stagefit::tools::overhead::measure(calls).map_err(|e| e.to_string())?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?);
        return Ok(());
    }
    let (experts, rows, n, k) = r.problem;
    println!(
        "problem: {experts} experts, {rows} rows, N={n}, K={k} (gpt-oss-20b down, 1 token); variant {}",
        r.variant
    );
    println!(
        "cold start: first call returns after {:.2} ms, its result is ready after {:.2} ms",
        r.cold_first_call_ms, r.cold_first_result_ms
    );
    println!("modules loaded by the handle: {} (of {} tactics x 2 formats)", r.modules_loaded, stagefit::TACTICS.len());
    println!(
        "steady-state CPU time per call over {} calls: median {:.2} us, p99 {:.2} us, max {:.2} us (variant choice alone: median {:.2} us)",
        r.calls, r.cpu_us_median, r.cpu_us_p99, r.cpu_us_max, r.select_us_median
    );
    println!(
        "free device memory before/after the calls: {} / {} bytes",
        r.free_bytes_before_after.0, r.free_bytes_before_after.1
    );
    println!(
        "kernel time per call: eager {:.1} us, in a CUDA graph of {} calls {:.1} us; graph output bit-identical: {}",
        r.eager_us,
        stagefit::tools::overhead::GRAPH_CALLS,
        r.graph_us_per_call,
        r.graph_output_identical
    );
    Ok(())
}

fn selftest_command(options: &Options) -> Result<(), String> {
    use stagefit::rng::SplitMix64;
    use stagefit::tools::selftest::{all_variant_cases, random_case, Outcome, Runner};
    let get = |name: &str| options.lists.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let number = |name: &str, default: &str| -> Result<u64, String> {
        get(name).unwrap_or(default).parse().map_err(|_| format!("{name} takes a number"))
    };
    let seed = number("--seed", "1")?;
    // Random cases are drawn one at a time, so any count costs no memory up front.
    let (count, cases): (u64, Box<dyn Iterator<Item = stagefit::tools::selftest::Case>>) =
        if get("--all-variants").is_some() {
            let all = all_variant_cases();
            (all.len() as u64, Box::new(all.into_iter()))
        } else {
            let count = number("--cases", "200")?;
            let mut rng = SplitMix64::new(seed);
            (count, Box::new((0..count).map(move |_| random_case(&mut rng))))
        };
    let ctx = stagefit::device::context(0).map_err(|e| e.to_string())?;
    let mut runner = Runner::new(ctx.new_stream().map_err(|e| e.to_string())?);
    let (mut passed, mut refused, mut failed, mut worst) = (0, 0, 0, 0f64);
    let started = std::time::Instant::now();
    for (i, case) in cases.enumerate() {
        if i > 0 && i % 250 == 0 {
            println!(
                "selftest: {i} of {count} cases so far ({:.0} s): {passed} passed, {refused} refused, {failed} failed",
                started.elapsed().as_secs_f64()
            );
        }
        match runner.run(&case, seed.wrapping_mul(1_000_003).wrapping_add(i as u64)).map_err(|e| e.to_string())? {
            Outcome::Pass(_, cmp) => {
                passed += 1;
                worst = worst.max(cmp.max_rel_err);
            }
            Outcome::Refused(_) => refused += 1,
            Outcome::Fail(why) => {
                failed += 1;
                println!("FAIL case {i} {case:?}: {why}");
            }
        }
    }
    println!(
        "selftest: {count} cases, {passed} passed, {refused} refused over budget, {failed} failed; worst max_rel_err {worst:.3e}"
    );
    if failed > 0 {
        return Err(format!("{failed} selftest cases failed"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse(&args).and_then(|options| match options.command.as_str() {
        "plan" => plan_command(&options),
        "info" => info_command(&options),
        "bench" => bench_command(&options),
        "tune" => tune_command(&options),
        "selftest" => selftest_command(&options),
        "overhead" => overhead_command(&options),
        other => Err(format!("unknown command {other:?}")),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("stagefit: {message}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}
