//! `moe-demo`: MoE inference through stagefit's grouped GEMM.
//!
//! Runs a prefill and a number of decode steps through the MoE layers of a model preset with
//! seeded random MXFP4/NVFP4 weights (generated on the GPU), and prints the device, the budget,
//! the variant each GEMM ran, tokens/s and the weight bandwidth. There is no attention: only
//! the MoE layers run. Decode steps replay one CUDA graph per step (`MoeEngine::capture_decode`);
//! `--eager` launches every kernel from the CPU instead, for comparison.

use std::process::ExitCode;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use half::bf16;
use stagefit::device::context;
use stagefit::moe::checkpoint::Checkpoint;
use stagefit::moe::{presets, reference, ForwardVariants, MoeEngine, MoeLayer, MoeWorkspace, Preset};
use stagefit::plan::StagePolicy;
use stagefit::reference::compare;
use stagefit::rng::SplitMix64;
use stagefit::{Error, TacticChoice};

const USAGE: &str = "usage: moe-demo [--preset gpt-oss-20b|gpt-oss-120b|qwen3-30b-a3b|mixtral-8x7b]
                [--prompt-tokens N] [--decode-steps N] [--batch N] [--layers N]
                [--smem-limit BYTES] [--policy run-time|fixed-family-max] [--verify] [--seed N] [--eager]
                [--weights model.safetensors]   (layers of the preset's shape; see stagefit::moe::checkpoint)";

struct Options {
    preset: Preset,
    prompt_tokens: usize,
    decode_steps: usize,
    batch: usize,
    budget: Option<usize>,
    policy: StagePolicy,
    verify: bool,
    seed: u64,
    weights: Option<std::path::PathBuf>,
    /// Decode with eager launches instead of a captured graph.
    eager: bool,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        preset: presets().remove(0),
        prompt_tokens: 512,
        decode_steps: 128,
        batch: 1,
        budget: None,
        policy: StagePolicy::RunTime,
        verify: false,
        seed: 1,
        weights: None,
        eager: false,
    };
    let mut layers = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let mut number = |name: &str| -> Result<usize, String> {
            let v = value()?;
            v.parse().map_err(|_| format!("{name} takes a number, not {v:?}"))
        };
        match arg.as_str() {
            "--preset" => {
                let name = value()?;
                o.preset = presets().into_iter().find(|p| p.name == name).ok_or(format!("unknown preset {name:?}"))?;
            }
            "--prompt-tokens" => o.prompt_tokens = number("--prompt-tokens")?,
            "--decode-steps" => o.decode_steps = number("--decode-steps")?,
            "--batch" => o.batch = number("--batch")?.max(1),
            "--layers" => layers = Some(number("--layers")?),
            "--smem-limit" => o.budget = Some(number("--smem-limit")?),
            "--seed" => o.seed = number("--seed")? as u64,
            "--verify" => o.verify = true,
            "--eager" => o.eager = true,
            "--policy" => {
                o.policy = match value()?.as_str() {
                    "run-time" => StagePolicy::RunTime,
                    "fixed-family-max" => StagePolicy::FixedFamilyMax,
                    other => return Err(format!("unknown policy {other:?}")),
                }
            }
            "--weights" => o.weights = Some(value()?.into()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if let Some(l) = layers {
        o.preset.layers = l.max(1);
    }
    Ok(o)
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

/// Reports decode progress every 16 steps and at the end.
fn progress(step: usize, steps: usize) {
    if step % 16 == 15 || step + 1 == steps {
        eprint!("\rdecode step {}/{steps}", step + 1);
    }
}

/// Distinct experts the routing of the last forward (with `tokens` tokens) used.
fn active_experts(ws: &MoeWorkspace, stream: &Arc<CudaStream>, tokens: usize, preset: &Preset) -> Result<usize, Error> {
    let r = ws.routing(stream, tokens, &preset.config)?;
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

fn print_variants(phase: &str, v: &ForwardVariants) {
    for (name, x) in [("gate_up", &v.gate_up), ("down", &v.down)] {
        println!(
            "  {phase:<8} {name:<8} tactic {:<18} STAGES {}  {} bytes of shared memory",
            x.tactic.name,
            x.stages,
            x.smem_bytes()
        );
    }
}

fn run(o: Options) -> Result<(), Error> {
    let ctx = context(0)?;
    // SAFETY: everything runs on this one stream, in order, so cudarc's cross-stream event
    // tracking is not needed (and its event waits could not be captured into the decode graph).
    unsafe { ctx.disable_event_tracking() };
    // A stream of its own: the default (legacy) stream cannot be captured.
    let stream = ctx.new_stream().map_err(|source| Error::Driver { context: "creating a stream", source })?;
    let engine = MoeEngine::new(&ctx, o.budget, o.policy)?;
    let info = engine.gemm().device().clone();
    let c = &o.preset.config;
    println!(
        "device: {} (sm_{}{}), {} bytes opt-in shared memory per block",
        info.name, info.compute_capability.0, info.compute_capability.1, info.smem_optin_per_block
    );
    println!(
        "shared-memory limit: {} bytes ({}); STAGES policy: {:?}",
        engine.gemm().limit().bytes(),
        engine.gemm().limit().source(),
        o.policy
    );
    println!(
        "model: {} MoE layers only (no attention): {} experts, top-{}, hidden {}, intermediate {}, {:?}, {}",
        o.preset.name,
        c.experts,
        c.top_k,
        c.hidden,
        c.intermediate,
        c.format,
        if o.weights.is_some() { "weights from the checkpoint" } else { "synthetic seeded weights" }
    );
    let layers: Vec<MoeLayer> = match &o.weights {
        Some(path) => {
            let ckpt = Checkpoint::open(path)?;
            let found = ckpt.layers();
            if found.is_empty() {
                return Err(Error::Checkpoint {
                    tensor: "model.layers.*.mlp.experts.*".into(),
                    problem: format!("{} has no MoE layers", path.display()),
                });
            }
            println!("loading {} MoE layers from {}", found.len(), path.display());
            found.iter().map(|&l| engine.upload(&stream, c, &ckpt.load_layer(l, c)?)).collect::<Result<_, _>>()?
        }
        None => (0..o.preset.layers)
            .map(|l| engine.random_layer(&stream, c, o.seed.wrapping_mul(1000) + l as u64))
            .collect::<Result<_, _>>()?,
    };
    let expert_bytes = c.expert_weight_bytes();
    println!(
        "weights: {} layers, {:.2} GB on the device",
        layers.len(),
        (layers.len() * c.experts * expert_bytes) as f64 / 1e9
    );

    let prefill_tokens = o.prompt_tokens * o.batch;
    let max_tokens = prefill_tokens.max(o.batch);
    let mut ws = MoeWorkspace::new(&stream, c, max_tokens)?;
    let (_, x) = random_tokens(&stream, max_tokens, c.hidden, o.seed)?;
    let mut y = stream
        .alloc_zeros::<bf16>(max_tokens * c.hidden)
        .map_err(|source| Error::Driver { context: "allocating", source })?;

    // Warm-up: loads and JIT-compiles the kernels both phases use.
    run_layers(&engine, &stream, &layers, &x, &mut y, prefill_tokens.max(1), &mut ws)?;
    run_layers(&engine, &stream, &layers, &x, &mut y, o.batch, &mut ws)?;
    stream.synchronize().map_err(|source| Error::Driver { context: "warm-up", source })?;

    println!("variants chosen (first layer):");
    let (prefill, ms) =
        timed(&ctx, &stream, || run_layers(&engine, &stream, &layers, &x, &mut y, prefill_tokens, &mut ws))?;
    let prefill_experts = active_experts(&ws, &stream, prefill_tokens, &o.preset)?;
    print_variants("prefill", &prefill);
    let decode_tokens = o.batch;
    let (decode, decode_ms, decode_experts) = if o.eager {
        let mut decode = None;
        let (_, ms) = timed(&ctx, &stream, || {
            for step in 0..o.decode_steps {
                decode = Some(run_layers(&engine, &stream, &layers, &x, &mut y, decode_tokens, &mut ws)?);
                progress(step, o.decode_steps);
            }
            Ok(())
        })?;
        (decode, ms, active_experts(&ws, &stream, decode_tokens, &o.preset)?)
    } else {
        // One graph per step: the same tokens as the eager path, copied into its input.
        let mut graph = engine.capture_decode(&stream, &layers, decode_tokens, TacticChoice::Auto)?;
        stream
            .memcpy_dtod(&x.slice(..decode_tokens * c.hidden), graph.input_mut())
            .map_err(|source| Error::Driver { context: "copying tokens", source })?;
        graph.replay()?;
        let (_, ms) = timed(&ctx, &stream, || {
            for step in 0..o.decode_steps {
                graph.replay()?;
                progress(step, o.decode_steps);
            }
            Ok(())
        })?;
        (Some(graph.variants()), ms, active_experts(graph.workspace(), &stream, decode_tokens, &o.preset)?)
    };
    if o.decode_steps > 0 {
        eprintln!();
    }
    if let Some(v) = &decode {
        print_variants("decode", v);
    }
    let gb = |experts: usize| (layers.len() * experts * expert_bytes) as f64 / 1e9;
    println!(
        "prefill: {prefill_tokens} tokens in {ms:.2} ms = {:.0} tokens/s; expert weights read {:.1} GB/s ({} of {} experts active in the last layer)",
        prefill_tokens as f64 / (ms as f64 / 1e3),
        gb(prefill_experts) / (ms as f64 / 1e3),
        prefill_experts,
        c.experts
    );
    if o.decode_steps > 0 {
        let per_step = decode_ms as f64 / o.decode_steps as f64;
        println!(
            "decode ({}): {} steps of batch {} in {decode_ms:.2} ms = {:.1} tokens/s ({per_step:.3} ms per step); expert weights read about {:.1} GB/s ({} of {} experts active in the last layer of the last step)",
            if o.eager { "eager launches" } else { "one CUDA graph per step" },
            o.decode_steps,
            o.batch,
            (o.decode_steps * o.batch) as f64 / (decode_ms as f64 / 1e3),
            gb(decode_experts) / (per_step / 1e3),
            decode_experts,
            c.experts
        );
    }
    if o.verify {
        let tokens = 4.min(max_tokens);
        let (host_x, x) = random_tokens(&stream, tokens, c.hidden, o.seed + 7)?;
        let mut out = stream
            .alloc_zeros::<bf16>(tokens * c.hidden)
            .map_err(|source| Error::Driver { context: "allocating", source })?;
        engine.forward(&stream, &layers[0], &x, tokens, &mut out, &mut ws, TacticChoice::Auto)?;
        let out = stream.clone_dtoh(&out).map_err(|source| Error::Driver { context: "downloading", source })?;
        let routing = ws.routing(&stream, tokens, c)?;
        let weights = layers[0].download(&stream)?;
        let expected = reference::forward(c, &weights, &host_x, &routing.ids, &routing.weights);
        let cmp = compare(&out, &expected);
        println!(
            "verify: layer 0, {tokens} tokens against the CPU reference: max_rel_err {:.3e}, norm_rel_err {:.3e}{}",
            cmp.max_rel_err,
            cmp.norm_rel_err,
            if cmp.non_finite > 0 { format!(", {} non-finite", cmp.non_finite) } else { String::new() }
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("moe-demo: {e}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::NoDriver) => {
            eprintln!("moe-demo: no CUDA driver on this machine, so nothing can run here. `stagefit plan --arch sm_121a --smem-limit 101376` shows what would run on a DGX Spark without a GPU.");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("moe-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
