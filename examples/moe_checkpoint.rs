//! An MoE layer from a safetensors checkpoint, run twice: routed by its own router
//! ([`MoeEngine::forward`]) and by routing the caller computed ([`MoeEngine::forward_routed`],
//! as an engine that runs its own router would), each checked against the CPU reference.
//!
//! `cargo run --release --example moe_checkpoint [-- FILE LAYER]` (needs an NVIDIA GPU). With
//! no file, it writes a small random layer in gpt-oss's MXFP4 layout to a temporary file and
//! loads that: the same path a real checkpoint of the layer's shape takes.

use std::path::PathBuf;

use half::bf16;
use stagefit::fp4::quantize;
use stagefit::moe::checkpoint::{write_layer, Checkpoint};
use stagefit::moe::{reference, GateUpLayout, MoeConfig, MoeEngine, MoeLayerWeights, MoeWorkspace, GPT_OSS};
use stagefit::plan::StagePolicy;
use stagefit::reference::compare;
use stagefit::rng::SplitMix64;
use stagefit::{Fp4Format, TacticChoice};

/// A small gpt-oss-shaped layer (the shape of the file this example writes).
fn config() -> MoeConfig {
    MoeConfig {
        experts: 8,
        top_k: 2,
        hidden: 256,
        intermediate: 128,
        renormalize: true,
        gate_up_layout: GateUpLayout::Interleaved,
        activation: GPT_OSS,
        format: Fp4Format::Mxfp4,
    }
}

/// Random weights for `config`, scaled so that activations stay near unit size.
fn random_layer(c: &MoeConfig, rng: &mut SplitMix64) -> Result<MoeLayerWeights, stagefit::Error> {
    let (e, h, i) = (c.experts, c.hidden, c.intermediate);
    Ok(MoeLayerWeights {
        router: rng.vec(e * h, -0.1, 0.1).into_iter().map(bf16::from_f32).collect(),
        router_bias: rng.vec(e, -0.1, 0.1),
        gate_up: quantize(c.format, e, 2 * i, h, &rng.vec(e * 2 * i * h, -0.1, 0.1))?,
        gate_up_bias: rng.vec(e * 2 * i, -0.1, 0.1),
        down: quantize(c.format, e, h, i, &rng.vec(e * h * i, -0.1, 0.1))?,
        down_bias: rng.vec(e * h, -0.1, 0.1),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = config();
    let mut rng = SplitMix64::new(11);
    let mut args = std::env::args().skip(1);
    let (path, layer) = match (args.next(), args.next()) {
        (Some(path), layer) => (PathBuf::from(path), layer.map_or(Ok(0), |l| l.parse())?),
        (None, _) => {
            let path = std::env::temp_dir().join(format!("stagefit-example-{}.safetensors", std::process::id()));
            std::fs::write(&path, write_layer(0, &random_layer(&config, &mut rng)?)?)?;
            (path, 0)
        }
    };
    let weights = Checkpoint::open(&path)?.load_layer(layer, &config)?;
    println!("loaded layer {layer} of {}: {}", path.display(), config.shape_summary());

    let tokens = 6;
    let x: Vec<bf16> = (0..tokens * config.hidden).map(|_| bf16::from_f32(rng.uniform(-1.0, 1.0))).collect();
    // The caller's routing, computed on the CPU: each token's top-k experts and weights.
    let logits = reference::router_logits(&config, &weights, &x, tokens);
    let (mut ids, mut combine) = (Vec::new(), Vec::new());
    for token_logits in logits.chunks(config.experts) {
        let (token_ids, token_weights) = reference::top_k(&config, token_logits);
        ids.extend(token_ids);
        combine.extend(token_weights.iter().map(|&w| w as f32));
    }

    let ctx = stagefit::device::context(0)?;
    let stream = ctx.default_stream();
    let engine = MoeEngine::new(&ctx, None, StagePolicy::RunTime)?;
    let layer = engine.upload(&stream, &config, &weights)?;
    let mut ws = MoeWorkspace::new(&stream, &config, tokens)?;
    let x_dev = stream.clone_htod(&x)?;
    let mut out = stream.alloc_zeros::<bf16>(tokens * config.hidden)?;

    let ran = engine.forward(&stream, &layer, &x_dev, tokens, &mut out, &mut ws, TacticChoice::Auto)?;
    // Compared with the reference layer under the routing the GPU chose.
    let routing = ws.routing(&stream, tokens, &config)?;
    let expected = reference::forward(&config, &weights, &x, &routing.ids, &routing.weights);
    let own = compare(&stream.clone_dtoh(&out)?, &expected);
    println!("forward (own router; gate_up {}, down {}): {own:?}", ran.gate_up.tactic.name, ran.down.tactic.name);

    let (ids_dev, combine_dev) = (stream.clone_htod(&ids)?, stream.clone_htod(&combine)?);
    engine.forward_routed(
        &stream,
        &layer,
        &x_dev,
        &ids_dev,
        &combine_dev,
        tokens,
        &mut out,
        &mut ws,
        TacticChoice::Auto,
    )?;
    let expected = reference::forward(&config, &weights, &x, &ids, &combine);
    let routed = compare(&stream.clone_dtoh(&out)?, &expected);
    println!("forward_routed (caller's routing): {routed:?}");
    if !own.acceptable() || !routed.acceptable() {
        return Err("the layer does not match the CPU reference".into());
    }
    println!("ok");
    Ok(())
}
