//! MoE-layer weights through safetensors files: both quantized layouts round-trip exactly,
//! dense weights are quantized on load, and malformed files give typed errors naming the
//! tensor.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::random_moe_weights;
use safetensors::tensor::{Dtype, TensorView};
use stagefit::fp4::quantize;
use stagefit::moe::checkpoint::{write_layer, Checkpoint};
use stagefit::moe::{Activation, GateUpLayout, MoeConfig, GPT_OSS};
use stagefit::{Error, Fp4Format};

fn config(format: Fp4Format) -> MoeConfig {
    MoeConfig {
        experts: 4,
        top_k: 2,
        hidden: 64,
        intermediate: 32,
        renormalize: true,
        gate_up_layout: GateUpLayout::Interleaved,
        activation: if format == Fp4Format::Mxfp4 { GPT_OSS } else { Activation::SwiGlu },
        format,
    }
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("stagefit-{}-{name}.safetensors", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// All tensors of `bytes` as owned (name, dtype, shape, data).
fn tensors(bytes: &[u8]) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect()
}

fn serialize(tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: HashMap<_, _> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn quantized_layouts_round_trip_exactly() {
    for format in Fp4Format::ALL {
        let config = config(format);
        let weights = random_moe_weights(&config, 3);
        let path = temp_file(&format!("roundtrip-{}", format.name()), &write_layer(7, &weights).unwrap());
        let ckpt = Checkpoint::open(&path).unwrap();
        assert_eq!(ckpt.layers(), vec![7]);
        assert_eq!(ckpt.load_layer(7, &config).unwrap(), weights, "{format:?}");
        std::fs::remove_file(path).ok();
    }
}

#[test]
fn the_gpt_oss_layout_has_the_documented_names_and_shapes() {
    let config = config(Fp4Format::Mxfp4);
    let all = tensors(&write_layer(0, &random_moe_weights(&config, 4)).unwrap());
    let shape = |name: &str| all.iter().find(|t| t.0 == name).map(|t| t.2.clone());
    let p = "model.layers.0.mlp.experts.";
    assert_eq!(shape(&format!("{p}gate_up_proj_blocks")), Some(vec![4, 64, 2, 16]));
    assert_eq!(shape(&format!("{p}gate_up_proj_scales")), Some(vec![4, 64, 2]));
    assert_eq!(shape(&format!("{p}down_proj_blocks")), Some(vec![4, 64, 1, 16]));
    assert_eq!(shape(&format!("{p}down_proj_scales")), Some(vec![4, 64, 1]));
    assert_eq!(shape("model.layers.0.mlp.router.weight"), Some(vec![4, 64]));
}

#[test]
fn dense_weights_are_quantized_on_load() {
    let config = config(Fp4Format::Nvfp4);
    let reference = random_moe_weights(&config, 5);
    let mut all: Vec<_> =
        tensors(&write_layer(0, &reference).unwrap()).into_iter().filter(|t| !t.0.contains("_nvfp4")).collect();
    let (e, h, i) = (config.experts, config.hidden, config.intermediate);
    let gate_up = reference.gate_up.dequantize();
    let down = reference.down.dequantize();
    let bf16_bytes = |v: &[f32]| v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect::<Vec<u8>>();
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    all.push(("model.layers.0.mlp.experts.gate_up_proj".into(), Dtype::BF16, vec![e, 2 * i, h], bf16_bytes(&gate_up)));
    all.push(("model.layers.0.mlp.experts.down_proj".into(), Dtype::F32, vec![e, h, i], f32_bytes(&down)));
    let path = temp_file("dense", &serialize(&all));
    let loaded = Checkpoint::open(&path).unwrap().load_layer(0, &config).unwrap();
    let rounded: Vec<f32> = gate_up.iter().map(|x| half::bf16::from_f32(*x).to_f32()).collect();
    assert_eq!(loaded.gate_up, quantize(Fp4Format::Nvfp4, e, 2 * i, h, &rounded).unwrap());
    assert_eq!(loaded.down, quantize(Fp4Format::Nvfp4, e, h, i, &down).unwrap());
    std::fs::remove_file(path).ok();
}

/// Loads layer 0 of `tensors` with `config` and returns the error.
fn load_error(tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)], config: &MoeConfig) -> Error {
    let path = temp_file("malformed", &serialize(tensors));
    let err =
        Checkpoint::open(&path).and_then(|c| c.load_layer(0, config)).expect_err("a malformed file must not load");
    std::fs::remove_file(path).ok();
    err
}

fn expect_tensor_error(err: Error, tensor: &str, words: &str) {
    match err {
        Error::Checkpoint { tensor: t, problem } => {
            assert_eq!(t, tensor);
            assert!(problem.contains(words), "{problem}");
        }
        other => panic!("expected a checkpoint error for {tensor}, got {other}"),
    }
}

#[test]
fn malformed_files_give_typed_errors_naming_the_tensor() {
    let config = config(Fp4Format::Mxfp4);
    let good = tensors(&write_layer(0, &random_moe_weights(&config, 6)).unwrap());
    let scales = "model.layers.0.mlp.experts.gate_up_proj_scales";

    let missing: Vec<_> = good.iter().filter(|t| t.0 != scales).cloned().collect();
    expect_tensor_error(load_error(&missing, &config), scales, "missing");

    let mut reshaped = good.clone();
    let t = reshaped.iter_mut().find(|t| t.0 == scales).unwrap();
    t.2 = vec![4, 32, 4];
    expect_tensor_error(load_error(&reshaped, &config), scales, "shape [4, 32, 4]");

    let mut retyped = good.clone();
    let router = "model.layers.0.mlp.router.weight";
    let t = retyped.iter_mut().find(|t| t.0 == router).unwrap();
    t.1 = Dtype::I16;
    expect_tensor_error(load_error(&retyped, &config), router, "dtype I16");

    let nvfp4 = MoeConfig { format: Fp4Format::Nvfp4, ..config.clone() };
    expect_tensor_error(load_error(&good, &nvfp4), "model.layers.0.mlp.experts.gate_up_proj", "Mxfp4");

    let no_experts: Vec<_> = good.iter().filter(|t| !t.0.contains("down_proj")).cloned().collect();
    expect_tensor_error(load_error(&no_experts, &config), "model.layers.0.mlp.experts.down_proj", "missing");

    let bytes = serialize(&good);
    let path = temp_file("truncated", &bytes[..bytes.len() - 100]);
    match Checkpoint::open(&path) {
        Err(Error::Checkpoint { tensor, problem }) => {
            assert_eq!(tensor, "<file>");
            assert!(problem.contains("not a valid safetensors file"), "{problem}");
        }
        other => panic!("a truncated file must not open: {:?}", other.map(|_| ())),
    }
    std::fs::remove_file(path).ok();
}
