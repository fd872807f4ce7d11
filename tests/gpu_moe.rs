//! The MoE layer on a real GPU against the CPU reference: routing, the permutation (exact),
//! and the layer output, for random routings including experts with no tokens and every
//! token on one expert. Skipped, with a printed reason, where no CUDA driver is present.

mod common;

use common::{gpu, random_moe_weights, small_gpt_oss};
use half::bf16;
use stagefit::device::context;
use stagefit::moe::checkpoint::{write_layer, Checkpoint};
use stagefit::moe::{reference, Activation, GateUpLayout, MoeConfig, MoeEngine, MoeLayerWeights, MoeWorkspace};
use stagefit::plan::StagePolicy;
use stagefit::reference::compare;
use stagefit::rng::SplitMix64;
use stagefit::{Family, Fp4Format, TacticChoice, TACTICS};

fn gpt_oss_like(experts: usize) -> MoeConfig {
    small_gpt_oss(experts, 4)
}

fn swiglu_like() -> MoeConfig {
    MoeConfig {
        experts: 8,
        top_k: 2,
        hidden: 512,
        intermediate: 256,
        renormalize: false,
        gate_up_layout: GateUpLayout::Concatenated,
        activation: Activation::SwiGlu,
        format: Fp4Format::Nvfp4,
    }
}

/// Runs one layer on `tokens` random tokens and checks everything against the CPU.
fn check_layer(name: &str, config: &MoeConfig, tokens: usize, hot_expert: Option<usize>, budget: Option<usize>) {
    let mut weights = random_moe_weights(config, tokens as u64 + 17);
    if let Some(e) = hot_expert {
        weights.router_bias[e] = 100.0;
    }
    check_weights(name, config, &weights, tokens, hot_expert, budget);
}

/// Runs a layer of `weights` on `tokens` random tokens and checks everything against the CPU.
fn check_weights(
    name: &str,
    config: &MoeConfig,
    weights: &MoeLayerWeights,
    tokens: usize,
    hot_expert: Option<usize>,
    budget: Option<usize>,
) {
    let ctx = context(0).unwrap();
    let stream = ctx.default_stream();
    let engine = MoeEngine::new(&ctx, budget, StagePolicy::RunTime).unwrap();
    let layer = engine.upload(&stream, config, weights).unwrap();
    let mut rng = SplitMix64::new(tokens as u64);
    let x: Vec<bf16> = (0..tokens * config.hidden).map(|_| bf16::from_f32(rng.uniform(-1.0, 1.0))).collect();
    let x_dev = stream.clone_htod(&x).unwrap();
    let mut out = stream.clone_htod(&vec![bf16::from_bits(0x7FC0); tokens * config.hidden]).unwrap();
    let mut ws = MoeWorkspace::new(&stream, config, tokens + 3).unwrap();
    let variants = engine.forward(&stream, &layer, &x_dev, tokens, &mut out, &mut ws, TacticChoice::Auto).unwrap();
    stream.synchronize().unwrap();
    let out = stream.clone_dtoh(&out).unwrap();
    let routing = ws.routing(&stream, tokens, config).unwrap();
    let k = config.top_k;

    // Routing: the CPU's top-k, except where two logits are too close for f32 to order.
    let logits = reference::router_logits(config, weights, &x, tokens);
    let mut near_ties = 0;
    for t in 0..tokens {
        let row = &logits[t * config.experts..(t + 1) * config.experts];
        let (ids, w) = reference::top_k(config, row);
        if ids != routing.ids[t * k..(t + 1) * k] {
            let mut sorted = row.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            assert!(
                (0..k).any(|r| sorted[r] - sorted[r + 1] < 1e-3),
                "{name}: token {t} routed to {:?}, CPU says {ids:?}",
                &routing.ids[t * k..(t + 1) * k]
            );
            near_ties += 1;
            continue;
        }
        for (r, (cpu, gpu)) in w.iter().zip(&routing.weights[t * k..(t + 1) * k]).enumerate() {
            assert!((cpu - *gpu as f64).abs() < 1e-4, "{name}: token {t} weight {r}");
        }
        if let Some(e) = hot_expert {
            assert_eq!(routing.ids[t * k], e as u32);
        }
    }
    // Permutation: assignments sorted by expert, stable, with matching offsets.
    let mut expected: Vec<u32> = (0..(tokens * k) as u32).collect();
    expected.sort_by_key(|&a| routing.ids[a as usize]);
    assert_eq!(routing.perm_src, expected, "{name}: permutation");
    for e in 0..config.experts {
        let count = routing.ids.iter().filter(|&&id| id as usize == e).count() as u32;
        assert_eq!(routing.offsets[e + 1] - routing.offsets[e], count, "{name}: expert {e} offsets");
    }
    let empty = (0..config.experts).filter(|&e| routing.offsets[e + 1] == routing.offsets[e]).count();
    // The caller-routed path with the same routing: the same bits.
    let (ids_dev, weights_dev) =
        (stream.clone_htod(&routing.ids).unwrap(), stream.clone_htod(&routing.weights).unwrap());
    let mut routed = stream.clone_htod(&vec![bf16::from_bits(0x7FC0); tokens * config.hidden]).unwrap();
    engine
        .forward_routed(
            &stream,
            &layer,
            &x_dev,
            &ids_dev,
            &weights_dev,
            tokens,
            &mut routed,
            &mut ws,
            TacticChoice::Auto,
        )
        .unwrap();
    let routed = stream.clone_dtoh(&routed).unwrap();
    assert!(
        routed.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()),
        "{name}: forward_routed differs from forward"
    );
    // The layer, with the GPU's routing.
    let expected = reference::forward(config, weights, &x, &routing.ids, &routing.weights);
    let cmp = compare(&out, &expected);
    println!(
        "{name}: T={tokens} empty experts={empty} near-ties={near_ties} gate_up={} S={} down={} S={} max_rel_err={:.3e} norm_rel_err={:.3e}",
        variants.gate_up.tactic.name, variants.gate_up.stages, variants.down.tactic.name, variants.down.stages, cmp.max_rel_err, cmp.norm_rel_err
    );
    assert!(cmp.non_finite == 0 && cmp.max_rel_err < 3e-2 && cmp.norm_rel_err < 1e-2, "{name}: {cmp:?}");
}

#[test]
fn gpt_oss_style_layer_matches_the_reference() {
    if gpu("gpt_oss_style_layer_matches_the_reference").is_none() {
        return;
    }
    check_layer("gpt-oss-like, few tokens (empty experts)", &gpt_oss_like(16), 3, None, None);
    check_layer("gpt-oss-like, decode batch", &gpt_oss_like(32), 8, None, Some(101376));
    check_layer("gpt-oss-like, prefill", &gpt_oss_like(32), 300, None, None);
    check_layer("gpt-oss-like, all tokens on expert 5", &gpt_oss_like(16), 40, Some(5), Some(101376));
    // 2 tokens · top-4 = 8 assignments: the most the one-launch routing takes; 3 tokens do not.
    check_layer("gpt-oss-like, one-launch routing at its limit", &gpt_oss_like(128), 2, None, None);
    check_layer("gpt-oss-like, one past it", &gpt_oss_like(128), 3, None, None);
    check_layer("gpt-oss-like, one token, one-launch routing", &gpt_oss_like(128), 1, None, None);
}

#[test]
fn swiglu_layer_matches_the_reference() {
    if gpu("swiglu_layer_matches_the_reference").is_none() {
        return;
    }
    check_layer("swiglu, odd tokens", &swiglu_like(), 37, None, None);
    check_layer("swiglu, one token", &swiglu_like(), 1, None, Some(65536));
    check_layer("swiglu, all tokens on expert 0", &swiglu_like(), 129, Some(0), None);
}

#[test]
fn a_layer_loaded_from_a_gpt_oss_layout_file_runs() {
    if gpu("a_layer_loaded_from_a_gpt_oss_layout_file_runs").is_none() {
        return;
    }
    let config = gpt_oss_like(32);
    let path = std::env::temp_dir().join(format!("stagefit-gpu-moe-{}.safetensors", std::process::id()));
    std::fs::write(&path, write_layer(3, &random_moe_weights(&config, 99)).unwrap()).unwrap();
    let loaded = Checkpoint::open(&path).unwrap().load_layer(3, &config).unwrap();
    std::fs::remove_file(&path).ok();
    check_weights("gpt-oss layout file, layer 3", &config, &loaded, 21, None, None);
}

#[test]
fn a_layer_of_every_model_directory_layout_matches_the_reference() {
    use common::model_dirs::{write_model_dir, DirLayout};
    use stagefit::moe::checkpoint::MoeModel;
    if gpu("a_layer_of_every_model_directory_layout_matches_the_reference").is_none() {
        return;
    }
    for layout in DirLayout::ALL {
        let written = write_model_dir(layout, "gpu", 13);
        let model = MoeModel::open(&written.dir).unwrap();
        for &layer in model.layers() {
            let weights = model.load_layer(layer).unwrap();
            let name = format!("{layout:?} directory, layer {layer}");
            check_weights(&name, model.config(), &weights, 9, None, None);
            check_weights(&name, model.config(), &weights, 1, None, Some(101376));
        }
        std::fs::remove_dir_all(&written.dir).ok();
    }
}

#[test]
fn bad_device_inputs_get_typed_errors() {
    use stagefit::{DeviceWeights, Error, GroupedGemm, GroupedGemmArgs};
    let Some((ctx, stream)) = gpu("bad_device_inputs_get_typed_errors") else { return };
    // Weight buffers shorter than their shape.
    let codes = stream.alloc_zeros::<u8>(16 * 64 / 2 - 1).unwrap();
    let scales = stream.alloc_zeros::<u8>(64 / 16 * 16).unwrap();
    let expert_scales = stream.clone_htod(&[1.0f32]).unwrap();
    match DeviceWeights::from_parts(Fp4Format::Nvfp4, (1, 16, 64), codes, scales, expert_scales) {
        Err(Error::BufferTooSmall { buffer: "codes", needed: 512, actual: 511 }) => {}
        other => panic!("expected a short-codes error, got {:?}", other.map(|_| ())),
    }
    // More tokens than the workspace was made for.
    let config = swiglu_like();
    let engine = MoeEngine::new(&ctx, None, StagePolicy::RunTime).unwrap();
    let layer = engine.upload(&stream, &config, &random_moe_weights(&config, 1)).unwrap();
    let mut ws = MoeWorkspace::new(&stream, &config, 4).unwrap();
    let x = stream.alloc_zeros::<bf16>(5 * config.hidden).unwrap();
    let mut out = stream.alloc_zeros::<bf16>(5 * config.hidden).unwrap();
    match engine.forward(&stream, &layer, &x, 5, &mut out, &mut ws, TacticChoice::Auto) {
        Err(Error::Shape { what: "tokens", value: 5, .. }) => {}
        other => panic!("expected a tokens error, got {:?}", other.map(|_| ())),
    }
    // A STAGES the tactic is not compiled at.
    let gemm = GroupedGemm::new(&ctx, None).unwrap();
    let p = common::random_problem("tiny", Fp4Format::Mxfp4, &[3], 32, 64, 5);
    let w = DeviceWeights::upload(&stream, &p.weights).unwrap();
    let a = stream.clone_htod(&p.a).unwrap();
    let offsets = stream.clone_htod(&p.offsets).unwrap();
    let mut c = stream.alloc_zeros::<bf16>(3 * 32).unwrap();
    let args =
        GroupedGemmArgs { rows: 3, a: a.as_view(), offsets: offsets.as_view(), weights: w.view(), c: c.as_view_mut() };
    match gemm.run(&stream, args, TacticChoice::Variant { tactic: "m128n128k128w2x4", stages: 8 }) {
        Err(Error::UnknownVariant(message)) => assert!(message.contains("STAGES=8"), "{message}"),
        other => panic!("expected an unknown-variant error, got {other:?}"),
    }
}

#[test]
fn captured_decode_steps_replay_the_eager_bits() {
    let Some((ctx, default_stream)) = common::gpu("captured_decode_steps_replay_the_eager_bits") else { return };
    let config = gpt_oss_like(32);
    // Input checks on: the eager warm-up makes them, the capture leaves them out.
    let engine = MoeEngine::new(&ctx, None, StagePolicy::RunTime).unwrap().with_input_checks(true);
    // The legacy default stream cannot be captured; nor can a stream whose buffers cudarc
    // synchronizes with events.
    let config_layer = engine.upload(&default_stream, &config, &random_moe_weights(&config, 39)).unwrap();
    match engine.capture_decode(&default_stream, std::slice::from_ref(&config_layer), 1, TacticChoice::Auto) {
        Err(stagefit::Error::Capture(why)) => assert!(why.contains("legacy"), "{why}"),
        other => panic!("expected a capture error, got {:?}", other.err()),
    }
    let tracked = ctx.new_stream().unwrap();
    match engine.capture_decode(&tracked, std::slice::from_ref(&config_layer), 1, TacticChoice::Auto) {
        Err(stagefit::Error::Capture(why)) => assert!(why.contains("event"), "{why}"),
        other => panic!("expected a capture error, got {:?}", other.err()),
    }
    // SAFETY: this test uses each stream's buffers on that stream only.
    unsafe { ctx.disable_event_tracking() };
    let stream = ctx.new_stream().unwrap();
    let layers: Vec<_> =
        (0..3).map(|l| engine.upload(&stream, &config, &random_moe_weights(&config, 40 + l)).unwrap()).collect();
    for tokens in [1, 5] {
        let mut graph = engine.capture_decode(&stream, &layers, tokens, TacticChoice::Auto).unwrap();
        let mut ws = MoeWorkspace::new(&stream, &config, tokens).unwrap();
        let mut rng = SplitMix64::new(tokens as u64);
        for round in 0..2 {
            let x: Vec<bf16> = (0..tokens * config.hidden).map(|_| bf16::from_f32(rng.uniform(-1.0, 1.0))).collect();
            stream.memcpy_htod(&x, graph.input_mut()).unwrap();
            graph.replay().unwrap();
            let replayed = stream.clone_dtoh(graph.output()).unwrap();
            // The same calls, eagerly: every layer on x, the last one's output kept.
            let x_dev = stream.clone_htod(&x).unwrap();
            let mut out = stream.alloc_zeros::<bf16>(tokens * config.hidden).unwrap();
            for layer in &layers {
                engine.forward(&stream, layer, &x_dev, tokens, &mut out, &mut ws, TacticChoice::Auto).unwrap();
            }
            let eager = stream.clone_dtoh(&out).unwrap();
            assert!(
                replayed.iter().zip(&eager).all(|(a, b)| a.to_bits() == b.to_bits()),
                "T={tokens} round {round}: the replay differs from the eager step"
            );
            assert!(replayed.iter().any(|v| v.to_f32() != 0.0), "T={tokens}: the replay wrote nothing");
        }
        // The same step captured with events between the steps: the same bits, and a time for
        // every step of every layer; an untimed graph has none.
        let mut timed = engine.capture_decode_timed(&stream, &layers, tokens, TacticChoice::Auto).unwrap();
        stream.memcpy_dtod(graph.input(), timed.input_mut()).unwrap();
        graph.replay().unwrap();
        timed.replay().unwrap();
        let (a, b) = (stream.clone_dtoh(graph.output()).unwrap(), stream.clone_dtoh(timed.output()).unwrap());
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "T={tokens}: the timed step differs");
        let times = timed.step_times_us().unwrap();
        assert_eq!(times.len(), layers.len());
        assert!(times.iter().flatten().all(|&t| t > 0.0 && t < 1e5), "{times:?}");
        assert!(matches!(graph.step_times_us(), Err(stagefit::Error::Capture(_))));
    }
}

/// Runs `tokens` seeded random tokens through `layers` with engines `a` and `b`, and checks
/// that every layer's output is written and the same bits under both. `a` runs first, on a
/// fresh (zeroed) workspace, so an intermediate it fails to write shows up as a difference
/// rather than being left over from `b`.
#[allow(clippy::too_many_arguments)]
fn assert_same_bits(
    (a, b): (&MoeEngine, &MoeEngine),
    stream: &std::sync::Arc<cudarc::driver::CudaStream>,
    config: &MoeConfig,
    layers: &[stagefit::moe::MoeLayer],
    tokens: usize,
    seed: u64,
    choice: TacticChoice<'_>,
    what: &str,
) {
    let mut rng = SplitMix64::new(seed);
    let x: Vec<bf16> = (0..tokens * config.hidden).map(|_| bf16::from_f32(rng.uniform(-1.0, 1.0))).collect();
    let x = stream.clone_htod(&x).unwrap();
    let mut ws = MoeWorkspace::new(stream, config, tokens).unwrap();
    let mut run = |engine: &MoeEngine| {
        let mut outs = Vec::new();
        for layer in layers {
            let mut out = stream.alloc_zeros::<bf16>(tokens * config.hidden).unwrap();
            engine.forward(stream, layer, &x, tokens, &mut out, &mut ws, choice).unwrap();
            outs.push(stream.clone_dtoh(&out).unwrap());
        }
        outs
    };
    let (a, b) = (run(a), run(b));
    for (l, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!(a.iter().any(|v| v.to_f32() != 0.0), "{what} T={tokens} layer {l}: nothing written");
        assert!(
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{what} T={tokens} layer {l}: the outputs differ"
        );
    }
}

#[test]
fn programmatic_launch_changes_no_bits() {
    let Some((ctx, _)) = common::gpu("programmatic_launch_changes_no_bits") else { return };
    let stream = ctx.new_stream().unwrap();
    let config = gpt_oss_like(32);
    let with = MoeEngine::new(&ctx, None, StagePolicy::RunTime).unwrap();
    let without = MoeEngine::new(&ctx, None, StagePolicy::RunTime).unwrap().with_programmatic_launch(false);
    assert!(!without.gemm().programmatic_launch());
    let layers: Vec<_> =
        (0..3).map(|l| with.upload(&stream, &config, &random_moe_weights(&config, 60 + l)).unwrap()).collect();
    // 1 and 2 tokens route in one launch, 8 (32 rows, the most launched programmatically)
    // through the multi-kernel path, 40 launch the ordinary way either way.
    for tokens in [1, 2, 8, 40] {
        let engines = (&with, &without);
        assert_same_bits(
            engines,
            &stream,
            &config,
            &layers,
            tokens,
            77 + tokens as u64,
            TacticChoice::Auto,
            "programmatic",
        );
    }
}

#[test]
fn the_fused_activation_changes_no_bits() {
    let Some((ctx, _)) = gpu("the_fused_activation_changes_no_bits") else { return };
    let stream = ctx.new_stream().unwrap();
    let engine = |fuse: bool| MoeEngine::new(&ctx, None, StagePolicy::RunTime).unwrap().with_fused_activation(fuse);
    let (plain, fused) = (engine(false), engine(true));
    for format in [Fp4Format::Mxfp4, Fp4Format::Nvfp4] {
        let config = MoeConfig { format, ..gpt_oss_like(32) };
        let layers: Vec<_> =
            (0..2).map(|l| plain.upload(&stream, &config, &random_moe_weights(&config, 90 + l)).unwrap()).collect();
        // Both GEMM families (a swap-AB and an MMA tile) and the automatic choice; 1-8 tokens
        // route in one launch or through the multi-kernel path, 40 give groups of several tiles.
        for choice in
            [TacticChoice::Auto, TacticChoice::Tactic("swm8n32k512w1k4"), TacticChoice::Tactic("m16n128k128w1x4")]
        {
            for tokens in [1, 3, 8, 40] {
                let what = format!("fused vs separate activation, {format:?} {choice:?}");
                assert_same_bits(
                    (&fused, &plain),
                    &stream,
                    &config,
                    &layers,
                    tokens,
                    91 + tokens as u64,
                    choice,
                    &what,
                );
            }
        }
    }
}

#[test]
fn early_down_weights_change_no_bits() {
    let Some((ctx, _)) = gpu("early_down_weights_change_no_bits") else { return };
    let stream = ctx.new_stream().unwrap();
    let engine = |early: bool| MoeEngine::new(&ctx, None, StagePolicy::RunTime).unwrap().with_early_down_weights(early);
    let (late, early) = (engine(false), engine(true));
    if !early.gemm().programmatic_launch() {
        eprintln!("early_down_weights_change_no_bits: skipped (no programmatic launch on this GPU: sm_90 and later)");
        return;
    }
    // A down projection of one K-tile (intermediate 128: the block's next tile starts inside
    // the ring's first stages) and of several (1280).
    for intermediate in [128, 1280] {
        for format in [Fp4Format::Mxfp4, Fp4Format::Nvfp4] {
            let config = MoeConfig { format, intermediate, ..gpt_oss_like(32) };
            let layers: Vec<_> =
                (0..2).map(|l| late.upload(&stream, &config, &random_moe_weights(&config, 120 + l)).unwrap()).collect();
            // Every family that copies weights before the wait (not the prefill-only Wgmma).
            for tactic in TACTICS.iter().filter(|t| t.tile.family != Family::Wgmma) {
                for choice in
                    [TacticChoice::Tactic(tactic.name), TacticChoice::Variant { tactic: tactic.name, stages: 2 }]
                {
                    // 1-2 tokens route in one launch, 8 (32 rows, the most launched
                    // programmatically) through the multi-kernel path, 40 launch the ordinary way.
                    for tokens in [1, 2, 8, 40] {
                        let what = format!("early vs late down weights, I={intermediate} {format:?} {choice:?}");
                        assert_same_bits(
                            (&early, &late),
                            &stream,
                            &config,
                            &layers,
                            tokens,
                            130 + tokens as u64,
                            choice,
                            &what,
                        );
                    }
                }
            }
        }
    }
}
