//! `moe-demo`: MoE inference through stagefit's grouped GEMM.
//!
//! Runs a prefill and a number of decode steps through the MoE layers of a model preset with
//! seeded random MXFP4/NVFP4 weights (generated on the GPU), and prints the device, the budget,
//! the variant each GEMM ran, tokens/s and the weight bandwidth. There is no attention: only
//! the MoE layers run. Decode steps replay one CUDA graph per step (`MoeEngine::capture_decode`);
//! `--eager` launches every kernel from the CPU instead, for comparison.

#[path = "../cli_common.rs"]
mod cli_common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use half::bf16;
use stagefit::device::context;
use stagefit::moe::checkpoint::Checkpoint;
use stagefit::moe::{
    reference, ForwardVariants, MoeConfig, MoeEngine, MoeLayer, MoeModel, MoeWorkspace, Preset, LAYER_STEPS,
};
use stagefit::plan::StagePolicy;
use stagefit::reference::compare;
use stagefit::rng::SplitMix64;
use stagefit::tools::bench::Tuning;
use stagefit::{Error, Fp4Format, TacticChoice};

use cli_common::{parse_format, parse_preset, progress, say, table, JsonTarget};
use serde::Serialize;

/// MoE inference through stagefit's grouped GEMM: a prefill and decode steps through the MoE
/// layers of a model (no attention), with tokens/s and the weight bandwidth.
///
/// The layers come from a preset's shapes with seeded random weights (the default), from a
/// model directory (`--model`: config.json and safetensors shards of gpt-oss, Mixtral or
/// Qwen3-MoE), or from one safetensors file of layers shaped like the preset (`--weights`).
#[derive(Parser)]
#[command(name = "moe-demo", version)]
#[command(after_help = "Logs: RUST_LOG=info (or debug) shows what the library does.")]
struct Args {
    /// The model shapes (with synthetic weights, or those of --weights).
    #[arg(long, value_parser = parse_preset, default_value = "gpt-oss-20b", conflicts_with = "model")]
    preset: Preset,
    /// A model directory: config.json and model.safetensors or its index and shards.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Format that dense expert weights of --model are quantized to [default: the family's].
    #[arg(long, value_parser = parse_format, requires = "model")]
    format: Option<Fp4Format>,
    /// One safetensors file of layers shaped like the preset (see stagefit::moe::checkpoint).
    #[arg(long, value_name = "FILE", conflicts_with = "model")]
    weights: Option<PathBuf>,
    /// Prompt tokens per sequence.
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    /// Decode steps.
    #[arg(long, default_value_t = 128)]
    decode_steps: usize,
    /// Sequences decoded together.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// Run only the first N MoE layers.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    layers: Option<u64>,
    /// Limit shared memory per block to BYTES.
    #[arg(long, value_name = "BYTES")]
    smem_limit: Option<usize>,
    /// How STAGES are chosen.
    #[arg(long, value_enum, default_value_t = Policy::RunTime)]
    policy: Policy,
    /// Check layer 0 on 4 tokens against the CPU reference.
    #[arg(long)]
    verify: bool,
    /// Seed of the synthetic weights and tokens.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Decode with eager launches instead of one CUDA graph per step.
    #[arg(long)]
    eager: bool,
    /// Launch every kernel the ordinary way, without programmatic dependent launch (which
    /// is on by default on sm_90 and later), for comparison.
    #[arg(long)]
    no_pdl: bool,
    /// Run the activation as its own kernel instead of in the gate/up GEMM's epilogue (fused by
    /// default where gate and up rows are interleaved, as in gpt-oss), for comparison.
    #[arg(long)]
    no_fuse: bool,
    /// Start the down projection's weight copies only after the gate/up GEMM has finished
    /// (by default a programmatically launched down GEMM copies its first weight K-tiles while
    /// the gate/up GEMM finishes), for comparison.
    #[arg(long)]
    no_early_weights: bool,
    /// What the grouped GEMMs' `auto` choice prefers to the heuristic: `shipped` (the crate's
    /// tune cache for this device), `heuristic` (none), or a tune cache FILE (`stagefit tune`).
    #[arg(long, value_name = "shipped|heuristic|FILE", default_value = "shipped")]
    tuning: String,
    /// Also time each step of a layer (routing, gate_up, activation, down, combine) with events
    /// inside a captured decode step, and print the per-layer breakdown.
    #[arg(long)]
    profile: bool,
    /// The CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Write the results as JSON to FILE, or to stdout (instead of the text) without a FILE.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    json: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Policy {
    /// The deepest STAGES that fit the limit in force.
    RunTime,
    /// The STAGES a family-maximum build would use (refuses what does not fit).
    FixedFamilyMax,
}

/// Runs `tokens` tokens of `x` through every layer into `y`; returns the variants of the
/// first layer. With no attention and no residual stream, every layer sees the same hidden
/// states (chaining random layers would collapse all tokens onto the same experts).
fn run_layers(
    engine: &MoeEngine,
    stream: &Arc<CudaStream>,
    layers: &[MoeLayer],
    x: &CudaSlice<bf16>,
    y: &mut CudaSlice<bf16>,
    tokens: usize,
    ws: &mut MoeWorkspace,
) -> Result<ForwardVariants, Error> {
    let mut first = None;
    for layer in layers {
        let v = engine.forward(stream, layer, x, tokens, y, ws, TacticChoice::Auto)?;
        first.get_or_insert(v);
    }
    Ok(first.expect("at least one layer"))
}

/// Milliseconds `f` takes on `stream`, by events.
fn timed<T>(
    ctx: &Arc<CudaContext>,
    stream: &Arc<CudaStream>,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<(T, f32), Error> {
    let start = ctx
        .new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
        .map_err(|source| Error::Driver { context: "creating an event", source })?;
    let end = ctx
        .new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
        .map_err(|source| Error::Driver { context: "creating an event", source })?;
    start.record(stream).map_err(|source| Error::Driver { context: "recording an event", source })?;
    let out = f()?;
    end.record(stream).map_err(|source| Error::Driver { context: "recording an event", source })?;
    let ms = start.elapsed_ms(&end).map_err(|source| Error::Driver { context: "timing", source })?;
    Ok((out, ms))
}

/// Distinct experts the routing of the last forward (with `tokens` tokens) used.
fn active_experts(
    ws: &MoeWorkspace,
    stream: &Arc<CudaStream>,
    tokens: usize,
    config: &MoeConfig,
) -> Result<usize, Error> {
    let r = ws.routing(stream, tokens, config)?;
    Ok(r.offsets.windows(2).filter(|w| w[1] > w[0]).count())
}

fn random_tokens(
    stream: &Arc<CudaStream>,
    tokens: usize,
    hidden: usize,
    seed: u64,
) -> Result<(Vec<bf16>, CudaSlice<bf16>), Error> {
    let mut rng = SplitMix64::new(seed);
    let host: Vec<bf16> = (0..tokens * hidden).map(|_| bf16::from_f32(rng.uniform(-1.0, 1.0))).collect();
    let dev = stream.clone_htod(&host).map_err(|source| Error::Driver { context: "uploading tokens", source })?;
    Ok((host, dev))
}

/// One GEMM's variant, as reported.
#[derive(Serialize)]
struct VariantReport {
    phase: &'static str,
    projection: &'static str,
    tactic: &'static str,
    stages: usize,
    smem_bytes: usize,
}

fn variants(phase: &'static str, v: &ForwardVariants) -> Vec<VariantReport> {
    [("gate_up", &v.gate_up), ("down", &v.down)]
        .into_iter()
        .map(|(projection, x)| VariantReport {
            phase,
            projection,
            tactic: x.tactic.name,
            stages: x.stages,
            smem_bytes: x.smem_bytes(),
        })
        .collect()
}

/// A timed phase, as reported.
#[derive(Serialize)]
struct PhaseReport {
    tokens: usize,
    ms: f64,
    tokens_per_s: f64,
    /// Expert weight bytes read per second (active experts of the last layer × layers).
    weight_gb_s: f64,
    active_experts: usize,
}

/// What `--json` writes.
#[derive(Serialize)]
struct DemoReport {
    device: String,
    smem_limit: usize,
    model: String,
    config: String,
    experts: usize,
    layers: usize,
    decode_mode: &'static str,
    programmatic_launch: bool,
    /// The activation in the gate/up GEMM's epilogue where the layout allows (`--no-fuse`).
    fused_activation: bool,
    /// The down projection's weight copies started before the gate/up GEMM ends
    /// (`--no-early-weights`).
    early_down_weights: bool,
    /// What the GEMMs' choice prefers to the heuristic (`--tuning`).
    tuning: String,
    batch: usize,
    variants: Vec<VariantReport>,
    prefill: PhaseReport,
    /// Decode: all steps together (`tokens` = steps × batch).
    decode: Option<PhaseReport>,
    /// Layer 0 against the CPU reference.
    verify: Option<VerifyReport>,
    /// Each step of a decode layer, by events (`--profile`).
    profile: Option<ProfileReport>,
}

/// The per-layer breakdown of decode steps, timed with events inside the captured step.
#[derive(Serialize)]
struct ProfileReport {
    /// Decode steps timed (every layer of each).
    steps: usize,
    /// Each step's mean GPU time per layer, µs: (step, µs); the time from the end of the step
    /// before it, so the gap before a kernel counts to its step.
    per_layer_us: Vec<(&'static str, f64)>,
    /// Their sum: a layer of the captured step with events between its steps.
    timed_layer_us: f64,
    /// A layer of the untimed decode graph (its step time ÷ layers), when the decode ran as a
    /// graph.
    graph_layer_us: Option<f64>,
}

/// Times every layer's steps over `steps` replays of a decode step of `batch` tokens captured
/// with events between the steps (`MoeEngine::capture_decode_timed`).
fn profile(
    engine: &MoeEngine,
    stream: &Arc<CudaStream>,
    layers: &[MoeLayer],
    x: &CudaSlice<bf16>,
    batch: usize,
    steps: usize,
) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let mut graph = engine.capture_decode_timed(stream, layers, batch, TacticChoice::Auto)?;
    let hidden = layers[0].config().hidden;
    stream.memcpy_dtod(&x.slice(..batch * hidden), graph.input_mut()).context("copying tokens")?;
    graph.replay()?;
    let mut sums = [0.0; LAYER_STEPS.len()];
    for _ in 0..steps {
        graph.replay()?;
        for layer in graph.step_times_us()? {
            for (sum, t) in sums.iter_mut().zip(layer) {
                *sum += t;
            }
        }
    }
    let calls = (steps * layers.len()) as f64;
    Ok(LAYER_STEPS.iter().zip(sums).map(|(&step, sum)| (step, sum / calls)).collect())
}

/// Layer 0 on a few tokens against the CPU reference.
#[derive(Serialize)]
struct VerifyReport {
    tokens: usize,
    max_rel_err: f64,
    norm_rel_err: f64,
}

/// Decode steps `--profile` times.
const PROFILE_STEPS: usize = 8;

/// The model the demo runs: its name, layer config and the layers on the device.
struct LoadedModel {
    name: String,
    /// What was loaded from where, for the output (empty for synthetic weights).
    loaded: String,
    config: MoeConfig,
    layers: Vec<MoeLayer>,
}

/// Loads the layers `args` asks for onto the device: the opened model directory's, a
/// checkpoint file's or seeded random ones of the preset's shape; at most `--layers` of them.
fn load(
    args: &Args,
    model: Option<&MoeModel>,
    engine: &MoeEngine,
    stream: &Arc<CudaStream>,
) -> anyhow::Result<LoadedModel> {
    let limit = |count: usize| args.layers.map_or(count, |l| count.min(l as usize));
    if let Some(model) = model {
        let dir = model.dir();
        let config = model.config().clone();
        let chosen = &model.layers()[..limit(model.layers().len())];
        let loaded = format!(
            "model: {} ({}, {} file{}): {} MoE layers, {}; loading {}",
            dir.display(),
            model.model_type().name(),
            model.files().len(),
            if model.files().len() == 1 { "" } else { "s" },
            model.layers().len(),
            model.layout().describe(),
            chosen.len()
        );
        let bar = progress(chosen.len() as u64, "loading layers");
        let layers = chosen
            .iter()
            .map(|&l| {
                let weights = model.load_layer(l)?;
                bar.inc(1);
                engine.upload(stream, &config, &weights)
            })
            .collect::<Result<Vec<_>, _>>()?;
        bar.finish_and_clear();
        let name = format!("{} ({})", dir.display(), model.model_type().name());
        return Ok(LoadedModel { name, loaded, config, layers });
    }
    let config = args.preset.config.clone();
    let mut loaded = String::new();
    let layers = match &args.weights {
        Some(path) => {
            let ckpt = Checkpoint::open(path)?;
            let found = ckpt.layers();
            if found.is_empty() {
                bail!("{} has no MoE layers (no model.layers.*.mlp.experts.* tensors)", path.display());
            }
            let chosen = &found[..limit(found.len())];
            loaded = format!("loading {} MoE layers from {}", chosen.len(), path.display());
            chosen
                .iter()
                .map(|&l| engine.upload(stream, &config, &ckpt.load_layer(l, &config)?))
                .collect::<Result<Vec<_>, _>>()?
        }
        None => (0..limit(args.preset.layers))
            .map(|l| engine.random_layer(stream, &config, args.seed.wrapping_mul(1000) + l as u64))
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(LoadedModel { name: args.preset.name.to_string(), loaded, config, layers })
}

fn run(args: Args) -> anyhow::Result<()> {
    let json = JsonTarget::from_arg(&args.json);
    if let Some(target) = &json {
        target.check_writable()?;
    }
    // With the JSON on stdout, the text goes nowhere.
    let text = json != Some(JsonTarget::Stdout);
    let say = |line: String| if text { say(line) } else { Ok(()) };
    // The model directory is read (config, index, shards present) before any GPU work.
    let model_dir = args.model.as_deref().map(|dir| MoeModel::open_with(dir, args.format)).transpose()?;
    // The tune cache, like the model, is read before any GPU work.
    let tuning = Tuning::parse(&args.tuning)?;
    let ctx = context(args.device)?;
    // SAFETY: everything runs on this one stream, in order, so cudarc's cross-stream event
    // tracking is not needed (and its event waits could not be captured into the decode graph).
    unsafe { ctx.disable_event_tracking() };
    // A stream of its own: the default (legacy) stream cannot be captured.
    let stream = ctx.new_stream().context("creating a stream")?;
    let policy = match args.policy {
        Policy::RunTime => StagePolicy::RunTime,
        Policy::FixedFamilyMax => StagePolicy::FixedFamilyMax,
    };
    let engine = MoeEngine::new(&ctx, args.smem_limit, policy)?
        .with_programmatic_launch(!args.no_pdl)
        .with_fused_activation(!args.no_fuse)
        .with_early_down_weights(!args.no_early_weights);
    let engine = match tuning {
        Tuning::Heuristic => engine.without_tuning(),
        Tuning::Cache(cache) => engine.with_tuning(cache).with_context(|| format!("--tuning {}", args.tuning))?,
        // The shipped cache: the engine's default.
        _ => engine,
    };
    let info = engine.gemm().device().clone();
    say(format!(
        "device: {} (sm_{}{}), {} bytes opt-in shared memory per block",
        info.name, info.compute_capability.0, info.compute_capability.1, info.smem_optin_per_block
    ))?;
    say(format!(
        "shared-memory limit: {} bytes ({}); STAGES policy: {policy:?}; programmatic dependent launch {}; fused activation {}; early down weights {}; tuning {}",
        engine.gemm().limit().bytes(),
        engine.gemm().limit().source(),
        on_off(engine.gemm().programmatic_launch()),
        on_off(!args.no_fuse),
        on_off(!args.no_early_weights),
        args.tuning,
    ))?;
    let model = load(&args, model_dir.as_ref(), &engine, &stream)?;
    if !model.loaded.is_empty() {
        say(model.loaded.clone())?;
    }
    let (c, layers) = (&model.config, &model.layers);
    say(format!(
        "model: {} MoE layers only (no attention): {} experts, top-{}, hidden {}, intermediate {}, {:?}, {}",
        model.name,
        c.experts,
        c.top_k,
        c.hidden,
        c.intermediate,
        c.format,
        if args.model.is_some() || args.weights.is_some() {
            "weights from the checkpoint"
        } else {
            "synthetic seeded weights"
        }
    ))?;
    let expert_bytes = c.expert_weight_bytes();
    say(format!(
        "weights: {} layers, {:.2} GB on the device",
        layers.len(),
        (layers.len() * c.experts * expert_bytes) as f64 / 1e9
    ))?;

    let batch = args.batch as usize;
    let prefill_tokens = args.prompt_tokens * batch;
    let max_tokens = prefill_tokens.max(batch);
    let mut ws = MoeWorkspace::new(&stream, c, max_tokens)?;
    let (_, x) = random_tokens(&stream, max_tokens, c.hidden, args.seed)?;
    let mut y = stream.alloc_zeros::<bf16>(max_tokens * c.hidden).context("allocating")?;

    // Warm-up: loads and JIT-compiles the kernels both phases use.
    run_layers(&engine, &stream, layers, &x, &mut y, prefill_tokens.max(1), &mut ws)?;
    run_layers(&engine, &stream, layers, &x, &mut y, batch, &mut ws)?;
    stream.synchronize().context("warm-up")?;

    let (prefill, ms) =
        timed(&ctx, &stream, || run_layers(&engine, &stream, layers, &x, &mut y, prefill_tokens, &mut ws))?;
    let prefill_experts = active_experts(&ws, &stream, prefill_tokens, c)?;
    let bar = progress(args.decode_steps as u64, "decode steps");
    let (decode, decode_ms, decode_experts) = if args.eager {
        let mut decode = None;
        let (_, ms) = timed(&ctx, &stream, || {
            for _ in 0..args.decode_steps {
                decode = Some(run_layers(&engine, &stream, layers, &x, &mut y, batch, &mut ws)?);
                bar.inc(1);
            }
            Ok(())
        })?;
        (decode, ms, active_experts(&ws, &stream, batch, c)?)
    } else {
        // One graph per step: the same tokens as the eager path, copied into its input.
        let mut graph = engine.capture_decode(&stream, layers, batch, TacticChoice::Auto)?;
        stream.memcpy_dtod(&x.slice(..batch * c.hidden), graph.input_mut()).context("copying tokens")?;
        graph.replay()?;
        let (_, ms) = timed(&ctx, &stream, || {
            for _ in 0..args.decode_steps {
                graph.replay()?;
                bar.inc(1);
            }
            Ok(())
        })?;
        (Some(graph.variants()), ms, active_experts(graph.workspace(), &stream, batch, c)?)
    };
    bar.finish_and_clear();
    let mut chosen = variants("prefill", &prefill);
    chosen.extend(decode.as_ref().map(|v| variants("decode", v)).unwrap_or_default());
    let gb = |experts: usize| (layers.len() * experts * expert_bytes) as f64 / 1e9;
    // `passes`: how many times the phase reads the active experts' weights.
    let phase = |tokens: usize, ms: f32, experts: usize, passes: usize| PhaseReport {
        tokens,
        ms: ms as f64,
        tokens_per_s: tokens as f64 / (ms as f64 / 1e3),
        weight_gb_s: gb(experts) * passes as f64 / (ms as f64 / 1e3),
        active_experts: experts,
    };
    let prefill = phase(prefill_tokens, ms, prefill_experts, 1);
    let decode =
        (args.decode_steps > 0).then(|| phase(args.decode_steps * batch, decode_ms, decode_experts, args.decode_steps));
    let verify = if args.verify {
        let tokens = 4.min(max_tokens);
        let (host_x, x) = random_tokens(&stream, tokens, c.hidden, args.seed + 7)?;
        let mut out = stream.alloc_zeros::<bf16>(tokens * c.hidden).context("allocating")?;
        engine.forward(&stream, &layers[0], &x, tokens, &mut out, &mut ws, TacticChoice::Auto)?;
        let out = stream.clone_dtoh(&out).context("downloading")?;
        let routing = ws.routing(&stream, tokens, c)?;
        let weights = layers[0].download(&stream)?;
        let expected = reference::forward(c, &weights, &host_x, &routing.ids, &routing.weights);
        let cmp = compare(&out, &expected);
        if cmp.non_finite > 0 {
            bail!("verify: layer 0 gave {} non-finite outputs", cmp.non_finite);
        }
        Some(VerifyReport { tokens, max_rel_err: cmp.max_rel_err, norm_rel_err: cmp.norm_rel_err })
    } else {
        None
    };
    let profile = if args.profile {
        let per_layer_us = profile(&engine, &stream, layers, &x, batch, PROFILE_STEPS)?;
        Some(ProfileReport {
            steps: PROFILE_STEPS,
            timed_layer_us: per_layer_us.iter().map(|(_, us)| us).sum(),
            per_layer_us,
            graph_layer_us: (!args.eager && args.decode_steps > 0)
                .then(|| decode_ms as f64 * 1e3 / args.decode_steps as f64 / layers.len() as f64),
        })
    } else {
        None
    };
    let report = DemoReport {
        device: info.name.clone(),
        smem_limit: engine.gemm().limit().bytes(),
        model: model.name.clone(),
        config: c.shape_summary(),
        experts: c.experts,
        layers: layers.len(),
        decode_mode: if args.eager { "eager" } else { "graph" },
        programmatic_launch: engine.gemm().programmatic_launch(),
        fused_activation: !args.no_fuse,
        early_down_weights: !args.no_early_weights,
        tuning: args.tuning.clone(),
        batch,
        variants: chosen,
        prefill,
        decode,
        verify,
        profile,
    };
    if text {
        print_report(&report)?;
    }
    if let Some(target) = &json {
        target.write("moe-demo", &report)?;
    }
    Ok(())
}

/// The results as text.
fn print_report(r: &DemoReport) -> anyhow::Result<()> {
    say("variants chosen (first layer):")?;
    let mut rows = table(&["phase", "projection", "tactic", "STAGES", "shared-memory bytes"], &[0, 1, 2]);
    for v in &r.variants {
        rows.add_row(vec![
            v.phase.to_string(),
            v.projection.to_string(),
            v.tactic.to_string(),
            v.stages.to_string(),
            v.smem_bytes.to_string(),
        ]);
    }
    say(rows)?;
    let p = &r.prefill;
    say(format!(
        "prefill: {} tokens in {:.2} ms = {:.0} tokens/s; expert weights read {:.1} GB/s ({} of {} experts active in the last layer)",
        p.tokens, p.ms, p.tokens_per_s, p.weight_gb_s, p.active_experts, r.experts
    ))?;
    if let Some(d) = &r.decode {
        let steps = d.tokens / r.batch;
        say(format!(
            "decode ({}): {steps} steps of batch {} in {:.2} ms = {:.1} tokens/s ({:.3} ms per step); expert weights read about {:.1} GB/s ({} of {} experts active in the last layer of the last step)",
            if r.decode_mode == "eager" { "eager launches" } else { "one CUDA graph per step" },
            r.batch,
            d.ms,
            d.tokens_per_s,
            d.ms / steps as f64,
            d.weight_gb_s,
            d.active_experts,
            r.experts,
        ))?;
    }
    if let Some(p) = &r.profile {
        say(format!(
            "profile: each step of a decode layer, mean of {} replays × {} layers, by events inside the captured step:",
            p.steps, r.layers
        ))?;
        let mut rows = table(&["step", "µs per layer", "share"], &[0]);
        for (step, us) in &p.per_layer_us {
            rows.add_row(vec![step.to_string(), format!("{us:.1}"), format!("{:.0} %", 100.0 * us / p.timed_layer_us)]);
        }
        rows.add_row(vec!["layer, timed".to_string(), format!("{:.1}", p.timed_layer_us), String::new()]);
        if let Some(graph) = p.graph_layer_us {
            rows.add_row(vec!["layer, untimed graph".to_string(), format!("{graph:.1}"), String::new()]);
        }
        say(rows)?;
    }
    if let Some(v) = &r.verify {
        say(format!(
            "verify: layer 0, {} tokens against the CPU reference: max_rel_err {:.3e}, norm_rel_err {:.3e}",
            v.tokens, v.max_rel_err, v.norm_rel_err
        ))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli_common::init_logging();
    cli_common::exit_status("moe-demo", run(args))
}

/// "on" or "off".
fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}
